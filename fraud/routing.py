"""Websocket routes of the fraud room, listed in ``config.asgi`` by dotted path."""

from __future__ import annotations

from django.urls import path

from fraud.consumers import FlagsConsumer

FLAGS_SOCKET_PATH = "/ws/fraud/flags/"

websocket_urlpatterns = [
    path(FLAGS_SOCKET_PATH.lstrip("/"), FlagsConsumer.as_asgi()),
]
