"""Websocket routes (served by ``config.asgi`` behind the session and origin checks)."""

from __future__ import annotations

from django.urls import path

from rideshare.consumers import TripStatusConsumer

TRIP_SOCKET_PREFIX = "ws/trips/"

websocket_urlpatterns = [
    path(f"{TRIP_SOCKET_PREFIX}<uuid:trip_id>/", TripStatusConsumer.as_asgi()),
]


def trip_socket_path(trip_id: str) -> str:
    """Return the path of the websocket that streams trip ``trip_id``'s status."""
    return f"/{TRIP_SOCKET_PREFIX}{trip_id}/"
