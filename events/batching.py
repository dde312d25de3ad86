"""What every micro-batch consumer loop shares (the stream processor, the scorer): batch latency
figures for its progress line, the clock that tells when it has been idle long enough, and
the garbage collector settings of a long-running loop.

Pure Python: no Django.
"""

from __future__ import annotations

import gc
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from events.bus import Consumer

# How long a consumer that owns no partitions yet waits before it counts as idle.
JOIN_GRACE_S = 30.0


KEPT = 100_000


def _quantile(values: deque, quantile: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]


@dataclass
class BatchStats:
    """Batches run and the latency (ms) of the last 100,000, whole and by stage."""

    batches: int = 0
    latencies_ms: deque = field(default_factory=lambda: deque(maxlen=KEPT))
    stages_ms: dict[str, deque] = field(default_factory=dict)
    # Where the stages go beside the kept figures: the process's metrics
    # (``events.telemetry.StageObserver``), set by the loop that runs the step.
    observer: Any = field(default=None, repr=False, compare=False)

    def latency(self, quantile: float) -> float:
        """Return the batch latency (ms) at ``quantile`` of the batches kept, 0 if none."""
        return _quantile(self.latencies_ms, quantile)

    def stage(self, name: str, started: float) -> float:
        """Record that stage ``name`` of this batch ran from ``started`` (``perf_counter``) to
        now; return now, the start of the next stage."""
        now = time.perf_counter()
        self.measured(name, (now - started) * 1000)
        return now

    def measured(self, name: str, ms: float) -> None:
        """Record a figure of this batch measured otherwise (``ms``) under stage ``name``."""
        if name not in self.stages_ms:
            self.stages_ms[name] = deque(maxlen=KEPT)
        self.stages_ms[name].append(ms)
        if self.observer is not None:
            self.observer.observe(name, ms)

    def stages_line(self) -> str:
        """Return the p50/p99 (ms) of each stage, in the order they first ran."""
        return ", ".join(
            f"{name} {_quantile(kept, 0.5):.1f}/{_quantile(kept, 0.99):.1f}"
            for name, kept in self.stages_ms.items()
        )


class IdleClock:
    """Tell when ``consumer`` has read nothing for ``until_idle_s`` seconds (never when it is
    ``None``). Joining the group is not idleness: the clock restarts once the consumer owns
    partitions, and while it owns none it waits at least ``JOIN_GRACE_S``. Ownership is asked
    at most once a second: the embedded bus's answer takes its log's write lock."""

    def __init__(self, consumer: Consumer, until_idle_s: float | None):
        self.consumer = consumer
        self.until_idle_s = until_idle_s
        self.idle_since = self.next_check = time.monotonic()
        self.assigned = False

    def busy(self) -> None:
        """Record that a batch arrived: the consumer owns partitions; idleness restarts."""
        self.assigned = True
        self.idle_since = time.monotonic()

    def expired(self) -> bool:
        """Return whether the consumer, having read nothing this turn, has been idle enough."""
        if not self.assigned and time.monotonic() >= self.next_check:
            self.next_check = time.monotonic() + 1.0
            if self.consumer.assignment():
                self.assigned, self.idle_since = True, time.monotonic()
        if self.until_idle_s is None:
            return False
        limit = self.until_idle_s if self.assigned else max(self.until_idle_s, JOIN_GRACE_S)
        return time.monotonic() - self.idle_since >= limit


# Allocations between two young collections (CPython's default: 700).
GC_YOUNG_THRESHOLD = 50_000


def gc_settle() -> None:
    """Settle the garbage collector for a loop that has loaded everything it needs (call once,
    after the warm-up): what is loaded now (Django, Feast, LightGBM: ~400,000 objects) is moved
    out of the collector's sight (``gc.freeze``), and young collections run every
    ``GC_YOUNG_THRESHOLD`` allocations: full collections of that heap pause a loop for as long
    as a whole batch takes, and frequent young ones cost it a measurable share of its time
    (docs/performance.md)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)
