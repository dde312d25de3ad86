import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from devservices.base import ServiceError, free_port, make_workdir, port_open, spawn, wait_ready

ROOT = Path(__file__).resolve().parents[2]


def test_a_service_that_dies_while_starting_is_reported_with_its_log():
    workdir = make_workdir("dying")
    service = spawn(
        "dying",
        [sys.executable, "-c", "print('cannot bind'); raise SystemExit(3)"],
        workdir=workdir,
        url="nowhere",
        started_at=time.monotonic(),
    )
    with pytest.raises(ServiceError) as caught:
        wait_ready(service, lambda: False, timeout=10)
    assert caught.value.service == "dying"
    assert "exited with code 3" in caught.value.reason
    assert "cannot bind" in caught.value.reason
    assert not workdir.exists()


def test_a_service_that_never_answers_times_out_with_the_last_error():
    workdir = make_workdir("silent")
    service = spawn(
        "silent",
        [sys.executable, "-c", "import time; time.sleep(60)"],
        workdir=workdir,
        url="nowhere",
        started_at=time.monotonic(),
    )

    def refuse():
        raise ConnectionRefusedError("connection refused")

    with pytest.raises(ServiceError, match=r"not ready after 1 s \(last: ConnectionRefused"):
        wait_ready(service, refuse, timeout=1)
    assert service.process.poll() is not None


def test_stop_ends_the_whole_process_group():
    port = free_port()
    workdir = make_workdir("group")
    server = (
        "import socket, subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen()\n"
        "time.sleep(60)\n"
    )
    service = spawn(
        "group",
        [sys.executable, "-c", server],
        workdir=workdir,
        url=f"127.0.0.1:{port}",
        started_at=time.monotonic(),
    )
    wait_ready(service, lambda: port_open(port), timeout=10)
    assert service.startup_seconds > 0
    pgid = os.getpgid(service.process.pid)

    service.stop()

    assert not port_open(port)
    assert not group_alive(pgid, within=5.0)


def group_alive(pgid: int, within: float) -> bool:
    """Return whether a process of group ``pgid`` still exists after ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize(("ci", "outcome"), [("true", "failed"), ("", "skipped")])
def test_missing_service_fails_in_ci_and_skips_elsewhere(pytester, monkeypatch, ci, outcome):
    pytester.makepyfile(
        textwrap.dedent(
            """
            from tests.conftest import service_unavailable

            def test_needs_kafka():
                service_unavailable("kafka", "broker exploded")
            """
        )
    )
    monkeypatch.setenv("CI", ci)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    result = pytester.runpytest_subprocess("-rsf", "-p", "no:django")
    result.assert_outcomes(**{outcome: 1})
    result.stdout.fnmatch_lines(["*kafka could not be started: broker exploded*"])
