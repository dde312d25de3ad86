"""Channels websocket consumers of the fraud room."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from fraud import live, selectors
from fraud.access import is_analyst

log = logging.getLogger(__name__)

# How often a socket reads the database for flags nobody pushed (the scorer's push does not
# cross processes on the in-memory channel layer), in seconds.
TAIL_SECONDS = 1.0
# Scorers commit concurrently, so a flag can become visible after flags with higher ids: every
# read looks again at this many ids below the highest sent and sends what it had not seen.
LATE_COMMIT_IDS = 500


class FlagsConsumer(AsyncJsonWebsocketConsumer):
    """An analyst's live list of flagged payments, for analysts and staff (``fraud.access``).

    The page connects to ``/ws/fraud/flags/?after=<id>`` with the highest flag id it shows
    (0 for none) and first receives every flag after it (the newest ``live.PAGE_SIZE`` of
    them), so nothing is missed across a disconnect; that first message comes even when it
    lists none, so the page knows when it has caught up (and only then says "Live"). Then each
    new flag, once. Every message is
    ``{"type": "fraud.flags", "flags": [{"id": ..., "html": "<tr ...>"}, ...]}``, oldest first.
    """

    tail: asyncio.Task | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if not await database_sync_to_async(is_analyst)(user):
            # Before accept(): the handshake is refused (HTTP 403).
            await self.close()
            return
        query = parse_qs(self.scope.get("query_string", b"").decode())
        try:
            after = max(0, int(query.get("after", ["0"])[0]))
        except ValueError:
            after = 0
        self.lock = asyncio.Lock()
        self.cursor = after
        self.sent: set[int] = set()
        # Join the group before the first read: a flag committed in between is read twice at
        # worst (and sent once), never lost.
        await self.channel_layer.group_add(live.FLAGS_GROUP, self.channel_name)
        await self.accept()
        async with self.lock:
            caught_up = await database_sync_to_async(self._catch_up)(after)
            await self.send_json({"type": live.FLAGS_NEW, "flags": caught_up})
        self.tail = asyncio.create_task(self._tail())

    async def disconnect(self, code: int) -> None:
        if self.tail is not None:
            self.tail.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.tail
        await self.channel_layer.group_discard(live.FLAGS_GROUP, self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:
        """Ignore what the page sends: it speaks once, in the URL."""

    async def fraud_flags(self, event: dict) -> None:
        """Handle ``live.FLAGS_NEW`` from the scorer: send the flags not sent yet."""
        await self.send_new()

    async def send_new(self) -> None:
        async with self.lock:
            await self._send(await database_sync_to_async(self._unsent)())

    async def _tail(self) -> None:
        while True:
            await asyncio.sleep(TAIL_SECONDS)
            try:
                await self.send_new()
            except Exception:
                # The database went away, say. Closing makes the page reconnect with its last
                # id and catch up, rather than show "Live" while nothing arrives.
                log.warning("fraud flags: reading new flags failed; closing", exc_info=True)
                await self.close()
                return

    async def _send(self, flags: list[dict]) -> None:
        if flags:
            await self.send_json({"type": live.FLAGS_NEW, "flags": flags})

    def _catch_up(self, after: int) -> list[dict]:
        """Return the flags after ``after``; remember every flag id the page now has."""
        # One read of the ids decides both what is sent and what counts as sent: the page has
        # every flag up to ``after``, and of the later ones the newest PAGE_SIZE (older ones
        # fall off the bottom of the page anyway).
        ids = selectors.flag_ids_after(
            after_id=after - LATE_COMMIT_IDS, limit=LATE_COMMIT_IDS + live.PAGE_SIZE
        )
        self.sent.update(ids)
        if ids:
            self.cursor = max(self.cursor, ids[0])
        return self._rows([i for i in ids if i > after][: live.PAGE_SIZE])

    def _unsent(self) -> list[dict]:
        """Return the flags committed since the last read; remember them as sent."""
        low = self.cursor - LATE_COMMIT_IDS
        ids = selectors.flag_ids_after(after_id=low, limit=LATE_COMMIT_IDS + live.PAGE_SIZE)
        new = [i for i in ids if i not in self.sent]
        self.sent = {i for i in self.sent if i > low}
        self.sent.update(new)
        if new:
            self.cursor = max(self.cursor, new[0])
        return self._rows(new[: live.PAGE_SIZE])

    def _rows(self, ids: list[int]) -> list[dict]:
        if not ids:
            return []
        return [{"id": f.id, "html": live.flag_row_html(f)} for f in selectors.flags_by_id(ids=ids)]
