"""Redis from Debian's redis-server, on a free loopback port, with no persistence."""

from __future__ import annotations

import time

from devservices.base import Service, free_port, make_workdir, require_binary, spawn, wait_ready

NAME = "redis"


def _answers(port: int) -> bool:
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1)
    try:
        return client.ping()
    finally:
        client.close()


def start(*, port: int | None = None, timeout: float = 30.0) -> Service:
    """Start redis-server bound to 127.0.0.1 with RDB and AOF off; wait until PING answers."""
    t0 = time.monotonic()
    binary = require_binary(NAME, "redis-server")
    port = port or free_port()
    workdir = make_workdir(NAME)
    service = spawn(
        NAME,
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(workdir), "--protected-mode", "yes", "--daemonize", "no"],
        workdir=workdir,
        started_at=t0,
        url=f"redis://127.0.0.1:{port}/0",
    )  # fmt: skip
    service.env = {"REDIS_URL": service.url, "CELERY_BROKER_URL": f"redis://127.0.0.1:{port}/1"}
    return wait_ready(service, lambda: _answers(port), timeout=timeout)
