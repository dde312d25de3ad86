"""The analyst's live list of flagged payments: the push to the open pages.

A flag is a ``FraudScore`` whose decision is review or decline (``fraud.selectors.FLAGGED``).
The scorer calls ``flags_broadcast(score_ids=...)`` after its commit; the websocket consumers
(``fraud.consumers``) then read the new flags from the database and send them. The message names
no row's content, so a page never shows what the database does not hold. With the in-memory
channel layer the scorer's message never reaches the web process, which is why every consumer
also reads the database about once a second: the push only makes a flag arrive sooner.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence

from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.template.loader import render_to_string

from fraud.models import FraudScore
from frontend.push import group_send_blocking

logger = logging.getLogger(__name__)

FLAGS_GROUP = "fraud-flags"
# The message type; Channels calls the consumer's ``fraud_flags`` method for it.
FLAGS_NEW = "fraud.flags"
# The page lists this many flags; a page that was away longer catches up on this many.
PAGE_SIZE = 100
# ``FlagPusher``: how long one push may take, and how many ids wait at most behind it.
PUSH_TIMEOUT_S = 5.0
PUSH_WAITING_MAX = 1000


def flag_row_html(flag: FraudScore) -> str:
    """Return the table row of ``flag`` as the page shows it (``fraud/_flag_row.html``)."""
    return render_to_string("fraud/_flag_row.html", {"flag": flag})


def flags_broadcast(*, score_ids: Sequence[int]) -> None:
    """Tell the open analyst pages that the scores ``score_ids`` were committed.

    Call it after the commit, with the ids of the new flags (other ids are harmless: the pages
    read only flags). Block until the channel layer took the message. A channel layer that is
    down is logged and otherwise ignored: the scores are committed and every page reads them
    from the database within about a second anyway, so the scorer must not fail for it.
    """
    layer = get_channel_layer()
    if layer is None or not score_ids:
        return
    message = {"type": FLAGS_NEW, "score_ids": [int(i) for i in score_ids]}
    try:
        group_send_blocking(layer, FLAGS_GROUP, message)
    except Exception:
        logger.warning("fraud flags: the channel layer did not take the push", exc_info=True)


def _run_then_close(loop: asyncio.AbstractEventLoop) -> None:
    # The loop is closed on its own thread once stopped: the Redis layer flushes its
    # connections as the loop closes, by running the loop once more, which a caller's thread
    # may not do while a loop of its own runs there (an async server, Playwright's sync API).
    try:
        loop.run_forever()
    finally:
        loop.close()


class FlagPusher:
    """The scorer's push of new flags: ``push`` hands the ids over and returns at once.

    ``flags_broadcast`` runs each push through ``async_to_sync``, which on a thread with no
    event loop makes a new loop for the call, and the Redis channel layer a new connection for
    that loop: 2.2 ms of CPU a push, measured on a local Redis, paid a hundred times a second at
    1,000 payments/s. The pusher keeps one loop on a daemon thread of its own, where the layer's
    connections stay open (0.4 ms a push), and sends from there, so the scorer's next batch
    need not wait. Ids pushed while a send is in flight go together in the next one; at most
    ``PUSH_WAITING_MAX`` wait (the newest), and a send is given ``PUSH_TIMEOUT_S``. A push lost
    to either, or to a layer that is down, is logged: the pages read the database about once a
    second anyway.

    The in-memory layer delivers to consumers on their own loops in this process, which another
    thread's loop must not touch: with it, ``push`` is ``flags_broadcast``, and blocks.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: list[int] = []
        # Set while no send is under way.
        self._idle = threading.Event()
        self._idle.set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.dropped = 0

    def push(self, score_ids: Sequence[int]) -> None:
        """Send ``score_ids`` (committed scores) to the open analyst pages, without waiting."""
        layer = get_channel_layer()
        if layer is None or not score_ids:
            return
        if isinstance(layer, InMemoryChannelLayer):
            flags_broadcast(score_ids=score_ids)
            return
        with self._lock:
            self._ids += [int(i) for i in score_ids]
            if len(self._ids) > PUSH_WAITING_MAX:
                self.dropped += len(self._ids) - PUSH_WAITING_MAX
                del self._ids[:-PUSH_WAITING_MAX]
            if not self._idle.is_set():
                return
            self._idle.clear()
        asyncio.run_coroutine_threadsafe(self._send(layer), self._running_loop())

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=_run_then_close, args=(self._loop,), name="fraud-flags-push", daemon=True
            )
            self._thread.start()
        return self._loop

    async def _send(self, layer) -> None:
        while True:
            with self._lock:
                ids, self._ids = self._ids, []
                if not ids:
                    self._idle.set()
                    return
            message = {"type": FLAGS_NEW, "score_ids": ids}
            try:
                await asyncio.wait_for(layer.group_send(FLAGS_GROUP, message), PUSH_TIMEOUT_S)
            except Exception:
                logger.warning(
                    "fraud flags: the channel layer did not take the push", exc_info=True
                )

    def close(self, timeout: float = PUSH_TIMEOUT_S) -> None:
        """Wait up to ``timeout`` seconds for the pushes under way, then stop the thread."""
        self._idle.wait(timeout)
        if self._loop is None:
            return
        loop, self._loop = self._loop, None
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
