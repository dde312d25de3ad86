"""Push trip changes to the rider's open trip pages through the Channels layer.

The trip services call ``trip_changed_on_commit`` for every status change; after the commit,
``trip_changed_broadcast`` tells the trip's group, whose websocket consumers
(``rideshare.consumers``) re-read the trip and send its current state. The message names the
trip only: each page reads the state from the database, so pages never show a state the
database does not hold and two quick changes cannot arrive in the wrong order.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

TRIP_CHANGED = "trip.changed"


def trip_group(trip_id: str) -> str:
    """Return the name of the channel group of the trip whose ``public_id`` is ``trip_id``."""
    return f"trip.{trip_id}"


def _loop_runs_here() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def trip_changed_broadcast(*, trip_id: str, status: str) -> None:
    """Tell the pages watching trip ``trip_id`` that it changed (it is now ``status``).

    Block until the channel layer took the message.
    """
    layer = get_channel_layer()
    if layer is None:
        return
    send = async_to_sync(layer.group_send)
    group = trip_group(trip_id)
    message = {"type": TRIP_CHANGED, "trip_id": trip_id, "status": status}
    if _loop_runs_here():
        # A synchronous caller on a thread that runs an event loop (a notebook, Playwright's
        # sync API; Django lets it use the ORM under DJANGO_ALLOW_ASYNC_UNSAFE): async_to_sync
        # will not block such a thread, so send from a worker thread and wait for it there.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(send, group, message).result()
    else:
        send(group, message)


def trip_changed_on_commit(*, trip_id: str, status: str) -> None:
    """Broadcast the trip's change once the caller's transaction commits (never if it rolls back).

    ``robust``: the change is committed by then, so a channel layer that is down must not fail
    the rider's or driver's request; the pages catch up when their socket reconnects.
    """

    def broadcast() -> None:
        trip_changed_broadcast(trip_id=trip_id, status=status)

    transaction.on_commit(broadcast, robust=True)
