"""PostgreSQL 15 from Debian's server binaries: ``initdb`` in a temporary directory, free port."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from glob import glob
from pathlib import Path

from devservices.base import Service, ServiceError, free_port, make_workdir, spawn, wait_ready

NAME = "postgresql"
# The server refuses to run as root; as root we run it as Debian's ``postgres`` account.
SERVICE_ACCOUNT = "postgres"


def bindir() -> Path:
    """Return the directory of the newest installed PostgreSQL server binaries."""
    override = os.environ.get("PG_BINDIR")
    candidates = [override] if override else sorted(glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for candidate in candidates:
        if candidate and (Path(candidate) / "postgres").exists():
            return Path(candidate)
    initdb = shutil.which("initdb")
    if initdb:
        return Path(os.path.realpath(initdb)).parent
    raise ServiceError(
        NAME, "no PostgreSQL server binaries (initdb, postgres) found; run `make system`"
    )


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVICE_ACCOUNT)
    except KeyError as exc:
        raise ServiceError(
            NAME, f"running as root and no '{SERVICE_ACCOUNT}' account exists"
        ) from exc
    return SERVICE_ACCOUNT


def _answers(port: int) -> bool:
    import psycopg

    with psycopg.connect(
        host="127.0.0.1", port=port, user="postgres", dbname="postgres", connect_timeout=2
    ) as conn:
        return conn.execute("SELECT 1").fetchone() == (1,)


def start(*, port: int | None = None, timeout: float = 60.0) -> Service:
    """Initialise a cluster (trust auth on loopback, durability off) and start ``postgres``."""
    t0 = time.monotonic()
    bins = bindir()
    user = _run_as()
    port = port or free_port()
    workdir = make_workdir(NAME)
    data = workdir / "data"
    if user:
        shutil.chown(workdir, user=user, group=user)
    initdb = subprocess.run(
        [str(bins / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
         "-E", "UTF8", "--locale=C", "--no-sync"],
        capture_output=True,
        text=True,
        check=False,
        user=user,
        cwd=workdir,
    )  # fmt: skip
    if initdb.returncode != 0:
        shutil.rmtree(workdir, ignore_errors=True)
        raise ServiceError(NAME, f"initdb failed:\n{initdb.stderr[-2000:]}")
    service = spawn(
        NAME,
        [str(bins / "postgres"), "-D", str(data), "-p", str(port), "-k", str(workdir),
         "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
         "-c", "full_page_writes=off", "-c", "max_connections=200"],
        workdir=workdir,
        started_at=t0,
        url=f"postgres://postgres@127.0.0.1:{port}/postgres",
        user=user,
    )  # fmt: skip
    service.env = {"DATABASE_URL": f"postgres://postgres@127.0.0.1:{port}/rideshare"}
    wait_ready(service, lambda: _answers(port), timeout=timeout)
    _create_database(port, "rideshare")
    return service


def _create_database(port: int, name: str) -> None:
    import psycopg

    with psycopg.connect(
        host="127.0.0.1", port=port, user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
