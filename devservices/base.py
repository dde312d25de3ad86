"""What every provisioned service shares: free ports, a supervised process, readiness waiting."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


class ServiceError(RuntimeError):
    """A service could not be provided; the message names the service and the reason."""

    def __init__(self, service: str, reason: str):
        super().__init__(f"{service}: {reason}")
        self.service = service
        self.reason = reason


# Every process spawned here, so none outlives the Python process that started it.
_SPAWNED: list[Service] = []


def log(message: str) -> None:
    print(f"[devservices] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def make_workdir(name: str) -> Path:
    """Create a fresh temporary directory for one service instance."""
    return Path(tempfile.mkdtemp(prefix=f"rideshare-{name}-"))


@dataclass
class Service:
    """A service process this module started, and how to reach it."""

    name: str
    url: str
    process: subprocess.Popen
    workdir: Path
    log_path: Path
    started_at: float
    startup_seconds: float = 0.0
    env: dict[str, str] = field(default_factory=dict)

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 20.0, *, keep_data: bool = False) -> None:
        """Stop the process group (SIGTERM, then SIGKILL); remove the working directory unless
        ``keep_data`` (to start the same service again on it)."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        if not keep_data:
            shutil.rmtree(self.workdir, ignore_errors=True)


def spawn(
    name: str,
    argv: list[str],
    *,
    workdir: Path,
    url: str,
    started_at: float,
    env: dict[str, str] | None = None,
    user: str | None = None,
) -> Service:
    """Start ``argv`` in its own process group, logging to ``workdir/<name>.log``.

    ``started_at`` (``time.monotonic()``) is when preparing the service began, so the reported
    start-up time includes preparation such as ``initdb`` or formatting storage."""
    log_path = workdir / f"{name}.log"
    log_file = log_path.open("ab")
    try:
        process = subprocess.Popen(
            argv,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            user=user,
        )
    except OSError as exc:
        raise ServiceError(name, f"cannot run {argv[0]}: {exc}") from exc
    finally:
        log_file.close()
    service = Service(
        name=name, url=url, process=process, workdir=workdir, log_path=log_path,
        started_at=started_at,
    )  # fmt: skip
    _SPAWNED.append(service)
    return service


@atexit.register
def _stop_spawned() -> None:
    for service in _SPAWNED:
        service.stop()


def wait_ready(service: Service, ready: Callable[[], bool], *, timeout: float) -> Service:
    """Poll ``ready`` until it returns True; fail with the log's tail if the process dies or
    ``timeout`` seconds pass. Record and print the start-up time."""
    deadline = time.monotonic() + timeout
    last_error = "no answer yet"
    while True:
        if not service.alive():
            code = service.process.returncode
            tail = service.log_tail()
            service.stop()
            raise ServiceError(service.name, f"exited with code {code} while starting:\n{tail}")
        try:
            if ready():
                break
        except Exception as exc:  # any failure to answer means "not yet"
            last_error = f"{type(exc).__name__}: {exc}"
        if time.monotonic() > deadline:
            tail = service.log_tail()
            service.stop()
            raise ServiceError(
                service.name, f"not ready after {timeout:.0f} s (last: {last_error}):\n{tail}"
            )
        time.sleep(0.1)
    service.startup_seconds = time.monotonic() - service.started_at
    log(f"{service.name} ready at {service.url} in {service.startup_seconds:.2f} s")
    return service


def require_binary(service: str, *candidates: str) -> str:
    """Return the first of ``candidates`` found on PATH (or as a path), or fail naming them."""
    for candidate in candidates:
        found = shutil.which(candidate)
        if found:
            return found
    raise ServiceError(service, f"none of {', '.join(candidates)} is installed (run `make system`)")
