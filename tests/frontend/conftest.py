"""An ASGI live server for browser tests that need websockets.

pytest-django's ``live_server`` speaks WSGI only. ``asgi_server`` runs the real ASGI application
(``config.asgi``: Django plus the Channels websocket routes) in a Daphne process forked from
the test process, as Channels' own ``ChannelsLiveServerTestCase`` does. The fork inherits the
settings, so it uses the test database; the test must commit what the server should see
(``transactional_db``). Its channel layer is its own (in memory): a push reaches a page only
when the change is made through the server, e.g. a driver's click in the driver console.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from daphne.testing import DaphneProcess
from django.db import connections

STARTUP_TIMEOUT_SECONDS = 15


def _application():
    from channels.routing import get_default_application

    return get_default_application()


def _forget_parent_state() -> None:
    """Start the server with an empty channel layer rather than the parent process's copy."""
    from channels.layers import channel_layers

    channel_layers.backends = {}


class AsgiServer:
    """A Daphne process serving ``config.asgi``; ``restart`` keeps the port."""

    host = "127.0.0.1"

    def __init__(self) -> None:
        self.port = 0
        self.process: DaphneProcess | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        # The fork must not share this process's database sockets: close them first (they
        # reopen on the next query).
        connections.close_all()
        process = DaphneProcess(self.host, _application, setup=_forget_parent_state, port=self.port)
        # Everything this process holds is moved out of the collector's sight before the fork,
        # so the child's collections never walk the objects it inherited (a forked server
        # crashed collecting them: objects of native extensions whose state does not survive
        # a fork).
        gc.collect()
        gc.freeze()
        try:
            process.start()
        finally:
            gc.unfreeze()
        if not process.ready.wait(STARTUP_TIMEOUT_SECONDS):
            process.terminate()
            reason = "no error reported"
            if not process.errors.empty():
                reason = process.errors.get_nowait()[1]
            raise RuntimeError(f"Daphne did not start within {STARTUP_TIMEOUT_SECONDS} s: {reason}")
        self.process = process
        self.port = process.port.value

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.join(10)
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def asgi_server(transactional_db) -> Iterator[AsgiServer]:
    """A running ASGI server (HTTP and websockets) on a free port, stopped after the test."""
    server = AsgiServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
