"""Push trip changes to the rider's open trip pages through the Channels layer.

The trip services call ``trip_changed_on_commit`` for every status change; after the commit,
``trip_changed_broadcast`` tells the trip's group, whose websocket consumers
(``rideshare.consumers``) re-read the trip and send its current state. The message names the
trip only: each page reads the state from the database, so pages never show a state the
database does not hold and two quick changes cannot arrive in the wrong order.
"""

from __future__ import annotations

from channels.layers import get_channel_layer
from django.db import transaction

from frontend.push import group_send_blocking

TRIP_CHANGED = "trip.changed"


def trip_group(trip_id: str) -> str:
    """Return the name of the channel group of the trip whose ``public_id`` is ``trip_id``."""
    return f"trip.{trip_id}"


def trip_changed_broadcast(*, trip_id: str, status: str) -> None:
    """Tell the pages watching trip ``trip_id`` that it changed (it is now ``status``).

    Block until the channel layer took the message.
    """
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": TRIP_CHANGED, "trip_id": trip_id, "status": status}
    group_send_blocking(layer, trip_group(trip_id), message)


def trip_changed_on_commit(*, trip_id: str, status: str) -> None:
    """Broadcast the trip's change once the caller's transaction commits (never if it rolls back).

    ``robust``: the change is committed by then, so a channel layer that is down must not fail
    the rider's or driver's request; the pages catch up when their socket reconnects.
    """

    def broadcast() -> None:
        trip_changed_broadcast(trip_id=trip_id, status=status)

    transaction.on_commit(broadcast, robust=True)
