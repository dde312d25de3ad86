"""The outbox relay: publish outbox rows to the bus in ``id`` order, mark them once acknowledged.

Order: a batch is the oldest unpublished rows; it is published in ``id`` order and only the
prefix before the first unacknowledged record is marked. Everything after it is sent again on
the next attempt, so the stream never sees a later event of a key without the earlier ones
(it may see one twice: consumers are idempotent on ``event_id``).

Failure: while the bus is unreachable the relay retries with exponential backoff and full jitter
(``Backoff``); bookings keep committing rows meanwhile, and the backlog drains on recovery.
Run one relay per database: a second would interleave batches and break the order.

Wake-up: on PostgreSQL every outbox INSERT notifies channel ``outbox`` at commit (a trigger,
migration ``events.0002``); the idle relay waits on that (``OutboxWakeup``), so an event leaves
right after its commit, not after the rest of an idle sleep (docs/performance.md). The sleep
stays the bound: a notification lost with its connection costs at most ``idle_sleep_s``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from threading import Event as StopFlag

from django.db.models import F
from django.utils import timezone

from events.bus import Bus, BusError, Producer, Record
from events.contracts import TOPICS
from events.models import OutboxEvent
from events.streaming import Backoff
from events.telemetry import RELAY_CYCLE_SECONDS, RELAY_FAILURES, RELAY_PUBLISHED

log = logging.getLogger(__name__)


class OutboxWakeup:
    """Waits until the outbox may have new rows: a ``LISTEN outbox`` on a connection of its own
    (PostgreSQL), or a plain sleep (any other database, or while that connection is down)."""

    CHANNEL = "outbox"

    def __init__(self) -> None:
        self._listener = None

    def _listen(self):
        from django.db import connection

        if connection.vendor != "postgresql":
            return None
        if self._listener is None or self._listener.closed:
            listener = connection.get_new_connection(connection.get_connection_params())
            listener.autocommit = True
            listener.execute(f"LISTEN {self.CHANNEL}")
            self._listener = listener
        return self._listener

    def wait(self, timeout_s: float, stop: StopFlag) -> None:
        """Return once a notification came, ``timeout_s`` passed, or ``stop`` is set."""
        try:
            listener = self._listen()
        except Exception as exc:  # the database is down: the relay's next query says so
            log.debug("relay: LISTEN failed: %s", exc)
            listener = None
        if listener is None:
            stop.wait(timeout_s)
            return
        try:
            for _ in listener.notifies(timeout=timeout_s, stop_after=1):
                pass
            # And what else is queued: one wake-up per burst of commits.
            for _ in listener.notifies(timeout=0):
                pass
        except Exception as exc:
            log.debug("relay: LISTEN connection lost: %s", exc)
            self.close()
            stop.wait(timeout_s)

    def close(self) -> None:
        if self._listener is not None:
            try:
                self._listener.close()
            except Exception:
                log.debug("relay: closing the LISTEN connection failed", exc_info=True)
            self._listener = None


@dataclass(frozen=True)
class RelayResult:
    published: int
    failed: int
    error: str = ""


def relay_once(
    producer: Producer,
    *,
    batch_size: int = 500,
    timeout_s: float = 30.0,
    after_publish: Callable[[list[int]], None] | None = None,
) -> RelayResult:
    """Publish the oldest ``batch_size`` unpublished rows; mark the acknowledged prefix.

    ``after_publish`` runs between the acknowledgement and the marking, with the ids of the
    rows published (tests use it to crash the relay exactly there).
    """
    # Plain tuples, not model instances: at a steady 1,000 events/s the relay runs a cycle
    # every few milliseconds, and building instances was a third of its time.
    rows = list(
        OutboxEvent.objects.filter(published_at__isnull=True)
        .order_by("id")
        .values_list("id", "topic", "key", "payload", "event_id")[:batch_size]
    )
    if not rows:
        return RelayResult(0, 0)
    records = [
        Record(
            topic=topic,
            key=key,
            value=payload.encode(),
            headers=(("event_id", str(event_id).encode()),),
        )
        for _, topic, key, payload, event_id in rows
    ]
    ids = [row[0] for row in rows]
    results = producer.publish(records, timeout=timeout_s)
    if after_publish is not None:
        after_publish(ids)
    acked = next((i for i, error in enumerate(results) if error is not None), len(rows))
    if acked:
        OutboxEvent.objects.filter(id__in=ids[:acked]).update(published_at=timezone.now())
    if acked == len(rows):
        return RelayResult(acked, 0)
    error = f"{type(results[acked]).__name__}: {results[acked]}"
    OutboxEvent.objects.filter(id__in=ids[acked:]).update(
        attempts=F("attempts") + 1, last_error=error[:2000]
    )
    return RelayResult(acked, len(rows) - acked, error)


def relay_run(
    bus: Bus,
    *,
    stop: StopFlag,
    partitions: int,
    batch_size: int = 500,
    idle_sleep_s: float = 0.05,
    backoff: Backoff | None = None,
) -> int:
    """Relay until ``stop`` is set; return how many events were published."""
    backoff = backoff or Backoff()
    producer: Producer | None = None
    wakeup = OutboxWakeup()
    total = 0
    while not stop.is_set():
        try:
            if producer is None:
                bus.ensure_topics(list(TOPICS), partitions=partitions)
                producer = bus.producer()
                backoff.reset()
                log.info("relay connected to the %s bus", bus.name)
            at = time.perf_counter()
            result = relay_once(producer, batch_size=batch_size)
        except BusError as exc:
            RELAY_FAILURES.inc()
            delay = backoff.next_delay()
            log.warning("relay: bus unavailable (%s); retrying in %.2f s", exc, delay)
            if producer is not None:
                producer.close()
                producer = None
            stop.wait(delay)
            continue
        total += result.published
        if result.published:
            RELAY_PUBLISHED.inc(result.published)
            RELAY_CYCLE_SECONDS.observe(time.perf_counter() - at)
        if result.failed:
            RELAY_FAILURES.inc()
            delay = backoff.next_delay()
            log.warning(
                "relay: %d published, %d not acknowledged (%s); retrying in %.2f s",
                result.published, result.failed, result.error, delay,
            )  # fmt: skip
            stop.wait(delay)
        elif result.published:
            backoff.reset()
            log.debug("relay: published %d", result.published)
        else:
            wakeup.wait(idle_sleep_s, stop)
    wakeup.close()
    if producer is not None:
        producer.close()
    return total
