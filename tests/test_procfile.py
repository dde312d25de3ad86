"""The process runner: one command starts every component; Ctrl-C stops them all."""

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from devservices.base import free_port, port_open
from tests.polling import wait_for

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow

SERVICE_VARIABLES = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "EVENT_BUS")


def descendants(pid: int) -> set[int]:
    """Return the pids of every process below ``pid`` (from /proc)."""
    found: set[int] = set()
    pending = [pid]
    while pending:
        parent = pending.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    pending.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def healthz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return response.status
    except OSError:
        return 0


def test_honcho_starts_every_component_on_embedded_defaults_and_sigint_stops_all(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    env.update(
        DJANGO_DEBUG="true",
        DJANGO_SETTINGS_MODULE="config.settings",
        VAR_DIR=str(tmp_path / "var"),
        WEB_PORT=str(port),
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=120,
    )
    log_path = tmp_path / "honcho.log"
    with log_path.open("wb") as log:
        runner = subprocess.Popen(
            [str(BIN / "honcho"), "start", "--no-colour"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        log_text = lambda: log_path.read_text(errors="replace")  # noqa: E731
        assert wait_for(lambda: healthz(port) == 200, 60), log_text()
        assert wait_for(lambda: "ready." in log_text() and "beat: Starting" in log_text(), 60), (
            log_text()
        )
        assert wait_for(lambda: "consuming" in log_text() and "relay:" in log_text(), 60), (
            log_text()
        )
        components = descendants(runner.pid)
        assert len(components) >= 5

        runner.send_signal(signal.SIGINT)
        runner.wait(timeout=60)

        output = log_text()
        for process in ("web.1", "worker.1", "beat.1", "relay.1", "ledger.1"):
            assert f"{process} stopped" in output, output
        assert not [pid for pid in components if alive(pid)]
        assert not port_open(port)
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()
