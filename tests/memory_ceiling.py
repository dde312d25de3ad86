"""A memory ceiling for the heavy tests (training sets, replays, backtests), so one that grows
fails alone rather than taking the machine (no swap: a process past what is left stalls
everything before the kernel's OOM killer acts).

``@pytest.mark.memory_ceiling(gib)``: while the test runs (its function fixtures, the test,
their teardown), a thread reads the process's resident set every 50 ms; once it has grown more
than ``gib`` GiB since the test's setup began, the test's thread gets ``MemoryCeilingExceeded``
(a ``MemoryError``) at its next Python instruction: that test fails with the figures, the run
goes on. Native code that never returns to Python (a DuckDB query) cannot be interrupted so: the
engine's own ``memory_limit`` bounds it, and a process ``HARD_MARGIN`` past the ceiling is
killed outright (the run fails, the machine does not). Why not ``RLIMIT_AS``: DuckDB, Arrow and
every thread's arena reserve address space they never touch, so a limit on it fails healthy
tests; why not pytest-memray's ``limit_memory``: it judges a test after it has finished, under
``--memray`` only, at the cost of tracing every allocation (docs/testing.md).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator

import pytest

GIB = 1 << 30
POLL_S = 0.05
HARD_MARGIN = 2 * GIB
_WATCH = pytest.StashKey["_Watch"]()
_current: _Watch | None = None


class MemoryCeilingExceeded(MemoryError):
    """The test's process grew past the test's ``memory_ceiling``."""


def resident_bytes() -> int:
    """Return this process's resident set size in bytes (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _Watch:
    """One test's watcher thread and the state its signal handler reads."""

    def __init__(self, name: str, gib: float) -> None:
        self.name, self.limit = name, int(gib * GIB)
        self.start = resident_bytes()
        self.thread_id = threading.get_ident()
        self.armed = self.raised = False
        self.grown = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="memory-ceiling", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.wait(POLL_S):
            self.grown = resident_bytes() - self.start
            if self.grown <= self.limit:
                continue
            if self.grown > self.limit + HARD_MARGIN:
                print(
                    f"\nmemory_ceiling: {self.name} grew {self.grown / GIB:.2f} GiB and did not "
                    "stop: killing the test run",
                    file=sys.__stderr__,
                    flush=True,
                )
                os.kill(os.getpid(), signal.SIGKILL)
            if not self.raised:
                # Sent again every poll until the handler raised it in an armed phase.
                signal.pthread_kill(self.thread_id, signal.SIGUSR1)

    def stop(self) -> None:
        self.done.set()
        self.thread.join()


def _raise(signum, frame) -> None:
    watch = _current
    if watch is None or not watch.armed or watch.raised:
        return
    watch.raised = True
    raise MemoryCeilingExceeded(
        f"{watch.name} grew {watch.grown / GIB:.2f} GiB, past its memory_ceiling of "
        f"{watch.limit / GIB:g} GiB"
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "memory_ceiling(gib): fail the test when its process grows more than gib GiB while it "
        "runs (tests/memory_ceiling.py)",
    )
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGUSR1, _raise)


def _phase(item: pytest.Item, *, first: bool = False, last: bool = False) -> Iterator[None]:
    global _current
    marker = item.get_closest_marker("memory_ceiling")
    if marker is None:
        return (yield)
    if first:
        item.stash[_WATCH] = _Watch(item.nodeid, float(marker.args[0]))
    watch = item.stash.get(_WATCH, None)
    if watch is None:
        return (yield)
    _current, watch.armed = watch, True
    try:
        return (yield)
    finally:
        watch.armed = False
        if last:
            watch.stop()
            _current = None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    return (yield from _phase(item, first=True))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    return (yield from _phase(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    return (yield from _phase(item, last=True))
