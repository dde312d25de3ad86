"""Channels websocket consumers of the booking side."""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from rideshare import live, selectors
from rideshare.web.trip_state import trip_state_message


class TripStatusConsumer(AsyncJsonWebsocketConsumer):
    """A rider's live view of one of their trips: its state now, then after every change.

    The session (``AuthMiddlewareStack``) says who the rider is; a socket for a trip that is not
    theirs, or without a login, is refused at the handshake. Every message is read from the
    database when it is sent, so a page that reconnects catches up on what it missed.
    """

    group: str | None = None

    async def connect(self) -> None:
        self.trip_id = str(self.scope["url_route"]["kwargs"]["trip_id"])
        trip = await database_sync_to_async(selectors.rider_trip)(
            user=self.scope["user"], trip_id=self.trip_id
        )
        if trip is None:
            # Before accept(): the handshake is refused (HTTP 403), the same for a trip that
            # does not exist as for another rider's.
            await self.close()
            return
        self.group = live.trip_group(self.trip_id)
        # Join the group before reading the state: a change committed in between is then
        # pushed as well (sent twice at worst), never lost.
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_state()

    async def disconnect(self, code: int) -> None:
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:
        """Ignore what the page sends: this socket only speaks."""

    async def trip_changed(self, event: dict) -> None:
        """Handle ``live.TRIP_CHANGED`` from the trip services: send the trip's new state."""
        await self.send_state()

    async def send_state(self) -> None:
        message = await database_sync_to_async(self._state)()
        if message is not None:
            await self.send_json(message)

    def _state(self) -> dict | None:
        trip = selectors.rider_trip(user=self.scope["user"], trip_id=self.trip_id)
        return trip_state_message(trip) if trip is not None else None
