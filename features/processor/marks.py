"""Where each partition the stream processor reads stands: the next offset, the latest accepted
event time (its lateness mark, stored in the window state with the offset it holds for, so a
replay decides lateness as the first run did), and how far back rows may be pruned."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from features.state import WindowState

# A partition not read for this long no longer holds back pruning (``low_watermark``).
PARTITION_IDLE_S = 60.0


@dataclass
class Partition:
    """Where a partition stands: the next offset expected, its max accepted event time, and
    when (``time.monotonic()``) this process last read from it."""

    next_offset: int
    max_ts: int | None
    seen_at: float = 0.0


def partition_load(
    state: WindowState, *, group: str, topic: str, partition: int, offset: int
) -> Partition:
    """Return the partition's position at ``offset`` from the lateness marks: the entry of
    that offset, else the latest one before it, else nothing seen yet."""
    marks = state.marks(group=group, topic=topic, partition=partition)
    if offset in marks:
        return Partition(offset, marks[offset])
    before = [o for o in marks if o < offset]
    return Partition(offset, marks[max(before)] if before else None)


def low_watermark(partitions: Mapping[object, Partition], *, lateness_us: int) -> int | None:
    """Return the earliest time a later event of ``partitions`` may have (each one's latest
    event time less the lateness): rows a window before it are no longer needed by the rows
    those partitions bring.

    Only partitions read in the last ``PARTITION_IDLE_S`` count, so an idle partition (or
    one now another process's) does not stop pruning. Partitions not counted are not
    known: an event arriving there more than the window and the lateness before this mark
    may find rows pruned (``StreamProcessor._exact``)."""
    since = time.monotonic() - PARTITION_IDLE_S
    known = [p.max_ts for p in partitions.values() if p.max_ts is not None and p.seen_at >= since]
    return min(known) - lateness_us if known else None
