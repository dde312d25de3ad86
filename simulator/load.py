"""Load mode: events published straight to the event stream at a fixed rate (an open model).

Event ``i`` is due at ``start + i / rate`` whatever the consumers or the broker do: each turn
publishes every event already due (at most ``max_batch``) in one batch, so a slow publish makes
the next batch bigger instead of lowering the long-run rate. The lag is how late a batch's
first event went out compared with its due time. Events are stamped with the wall-clock time
they were due (``occurred_at``), not with the simulated clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

from events.bus import Bus, Record
from events.contracts import TOPICS, topic_name
from simulator.engine import Emitted, truth_row
from simulator.report import Stats

MAX_BATCH = 2000


def topics_ensure(bus: Bus, *, prefix: str, partitions: int) -> None:
    """Create every event topic (under ``prefix`` when set) that does not exist yet."""
    bus.ensure_topics([topic_name(prefix, topic) for topic in TOPICS], partitions=partitions)


def load_publish(
    emitted: Iterator[Emitted],
    *,
    bus: Bus,
    rate: float,
    stats: Stats,
    count: int | None = None,
    duration_s: float | None = None,
    topic_prefix: str = "",
    on_truth: Callable[[list[dict]], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    on_progress: Callable[[], None] | None = None,
    max_batch: int = MAX_BATCH,
) -> Stats:
    """Publish events from ``emitted`` at ``rate`` per second until ``count`` events are sent,
    ``duration_s`` has passed or ``should_stop()`` says so; return ``stats``.

    Ground truth of the events sent (``engine.truth_row``) goes to ``on_truth`` batch by batch.
    """
    if rate <= 0:
        raise ValueError("the rate must be positive")
    if count is None and duration_s is None:
        raise ValueError("a load run is bounded: give a count or a duration")
    limit = count if count is not None else int(rate * duration_s) + 1
    producer = bus.producer()
    start = stats.started = time.monotonic()
    wall = datetime.now(UTC)
    deadline = start + duration_s if duration_s is not None else None
    sent = 0
    try:
        while sent < limit:
            now = time.monotonic()
            if (deadline is not None and now >= deadline) or should_stop():
                stats.stopped = deadline is None or now < deadline
                break
            due = min(int((now - start) * rate) + 1, limit) - sent
            if due <= 0:
                time.sleep(min(start + sent / rate - now, 0.05))
                continue
            batch = [next(emitted) for _ in range(min(due, max_batch))]
            stats.lag(now - (start + sent / rate))
            stamps = [wall + timedelta(seconds=(sent + i) / rate) for i in range(len(batch))]
            publish_batch(
                producer,
                batch,
                stamps=stamps,
                topic_prefix=topic_prefix,
                stats=stats,
                on_truth=on_truth,
            )
            sent += len(batch)
            if on_progress is not None:
                on_progress()
    finally:
        producer.close()
        stats.finish()
    return stats


def publish_batch(
    producer,
    batch: list[Emitted],
    *,
    stamps: list[datetime] | None = None,
    topic_prefix: str,
    stats: Stats,
    on_truth: Callable[[list[dict]], None] | None,
) -> None:
    """Publish ``batch`` in one call (each event's ``occurred_at`` replaced by its stamp when
    ``stamps`` are given); count what went out and what failed, and hand the ground truth of
    what went out to ``on_truth``."""
    events = [item.event for item in batch]
    if stamps is not None:
        events = [
            event.model_copy(update={"occurred_at": at})
            for event, at in zip(events, stamps, strict=True)
        ]
    records = [
        Record(topic_name(topic_prefix, e.topic), value=e.encode(), key=e.key()) for e in events
    ]
    results = producer.publish(records)
    truth = []
    for item, event, error in zip(batch, events, results, strict=True):
        if error is not None:
            stats.error(f"{event.topic} {event.event_id}: {error}")
            continue
        done = item if event is item.event else Emitted(event, item.truth)
        stats.record(done)
        if item.truth is not None:
            truth.append(truth_row(done))
    if truth and on_truth is not None:
        on_truth(truth)
