"""Redis from Debian's redis-server, on a free loopback port; no persistence unless asked for
(an append-only file, so a server stopped and started again on it keeps its data)."""

from __future__ import annotations

import time
from pathlib import Path

from devservices.base import Service, free_port, make_workdir, require_binary, spawn, wait_ready

NAME = "redis"
PORT_FILE = "port"


def _answers(port: int) -> bool:
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1)
    try:
        return client.ping()
    finally:
        client.close()


def start(
    *,
    port: int | None = None,
    timeout: float = 30.0,
    persist: bool = False,
    workdir: Path | None = None,
) -> Service:
    """Start redis-server bound to 127.0.0.1 and wait until PING answers. RDB is off, and the
    append-only file too unless ``persist``.

    Given the ``workdir`` of a persistent server stopped with ``keep_data=True``, start it again
    on the same port and data instead."""
    t0 = time.monotonic()
    binary = require_binary(NAME, "redis-server")
    restart = workdir is not None and (workdir / PORT_FILE).exists()
    if restart:
        port = int((workdir / PORT_FILE).read_text())
        persist = True
    else:
        port = port or free_port()
        workdir = make_workdir(NAME)
        (workdir / PORT_FILE).write_text(str(port))
    service = spawn(
        NAME,
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "yes" if persist else "no", "--appendfsync", "everysec",
         "--dir", str(workdir), "--protected-mode", "yes", "--daemonize", "no"],
        workdir=workdir,
        started_at=t0,
        url=f"redis://127.0.0.1:{port}/0",
    )  # fmt: skip
    service.env = {"REDIS_URL": service.url, "CELERY_BROKER_URL": f"redis://127.0.0.1:{port}/1"}
    return wait_ready(service, lambda: _answers(port), timeout=timeout)
