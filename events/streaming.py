"""The one micro-batch stream-consumer loop.

A consumer is a ``BatchStep``: it says which topics it reads under which group, and what a
polled batch does (``submit``). The loop owns the rest, once for every consumer: making the bus
consumer, polling, stopping (a stop flag, usually ``events.stopping.stop_on_signals``; nothing
read for ``until_idle_s``; ``max_seconds``; ``max_batches``), the progress line every
``log_every_s``, and the order of the shutdown. A step's optional hooks let it do its own
housekeeping without owning the loop: ``ready`` (may it poll now?), ``idle`` (a poll found
nothing), ``tick`` (after every turn: flushes, sweeps), ``drain`` (the loop ends normally:
finish what is pending) and ``close`` (always, before the consumer is closed).

The shape follows Sentry's arroyo (a consumer is a strategy that is submitted batches and
polled for housekeeping; commits follow effects); see ``docs/decisions/0001-consumer-framework.md``
for why the project keeps its own loop rather than adopting arroyo.

Decoding and dead letters: a step turns each polled record into its event with
``decode_or_dead_letter``, which rejects a poison record (``events.contracts.decode``) to the
step's dead-letter topic; the step publishes its batch's dead letters, acknowledged, before it
commits the batch.

Offsets: a step commits what it finished through ``offsets_commit`` (every step commits after
its effects, some only after a flush that spans several batches). Publishing: a step's records
go through one ``Publisher`` (its producer, made at first use; ``publish_acked`` for records
that must be acknowledged before the batch counts as done, such as dead letters).

Pure Python: no Django.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from threading import Event as StopFlag
from typing import Any, Protocol

from events.batching import IdleClock
from events.bus import Bus, BusError, Consumer, Message, Producer, Record
from events.contracts import Event, PoisonMessage, decode_record
from events.deadletters import DeadLetterer
from events.telemetry import ConsumerMetrics, StageObserver

log = logging.getLogger(__name__)


class Stats(Protocol):
    """What the loop reads of a step's figures: how many records it has seen."""

    events: int


@dataclass(frozen=True)
class ConsumerOptions:
    """How ``manage.py consume`` was asked to run a consumer; ``None`` is the consumer's own
    default."""

    group: str | None = None
    namespace: str = ""
    max_records: int | None = None
    poll_timeout_s: float | None = None

    def settings_overrides(self) -> dict[str, int | float]:
        """Return the options given, as overrides of a step's settings (``max_records``,
        ``poll_timeout_s``): those not given keep the step's defaults."""
        overrides: dict[str, int | float] = {}
        if self.max_records:
            overrides["max_records"] = self.max_records
        if self.poll_timeout_s is not None:
            overrides["poll_timeout_s"] = self.poll_timeout_s
        return overrides


class BatchStep:
    """A consumer's part of the loop. Subclasses set the attributes (``name``, ``group``,
    ``topics``, ``stats``) and implement ``submit``; the hooks do nothing unless overridden.
    ``consumer`` is the bus consumer while the loop runs (``None`` otherwise: a step driven
    batch by batch in a test commits nothing)."""

    name: str
    bus: Bus
    group: str
    topics: Sequence[str]
    stats: Stats
    max_records: int = 500
    poll_timeout_s: float = 0.5
    # How long the bus may hold a fetch to fill a batch (``Bus.consumer``); None: its default.
    batch_wait_ms: int | None = None
    # How long ``ready`` returning False makes the loop wait before asking again.
    not_ready_wait_s: float = 0.5
    log_every_s: float = 10.0
    consumer: Consumer | None = None
    # The step's dead-letter topic and what rejects to it (``events.deadletters``).
    dead_letters: DeadLetterer

    def dead_letter(self, message: Message, kind: str, detail: str) -> Record:
        """Return the dead-letter record of ``message``, rejected as ``kind``: ``detail``. A step
        that counts its dead letters overrides it."""
        return self.dead_letters.reject(message, kind, detail)

    def decode_or_dead_letter(
        self, message: Message, rejected: list[Record]
    ) -> tuple[Event, dict[str, Any]] | None:
        """Return ``message``'s event and the JSON object it was sent as
        (``events.contracts.decode_record``); for a poison message, append its dead letter to
        ``rejected`` (the step publishes them, acknowledged, before it commits the batch) and
        return ``None``: a poison message is never retried."""
        try:
            return decode_record(message.topic, message.value)
        except PoisonMessage as poison:
            rejected.append(self.dead_letter(message, poison.kind, poison.detail))
            return None

    def open(self) -> None:
        """Prepare to consume (topics this step writes to, warm-ups): before the consumer."""

    def ready(self) -> bool:
        """Return whether the step can take a batch now (nothing is polled while it cannot)."""
        return True

    def submit(self, messages: Sequence[Message]) -> None:
        """Process one polled batch (each partition's records in offset order)."""
        raise NotImplementedError

    def idle(self) -> None:
        """A poll returned nothing."""

    def tick(self) -> None:
        """After every turn of the loop (a batch or an empty poll)."""

    def drain(self) -> None:
        """The loop ends without an error: finish what is pending (commits included)."""

    def close(self) -> None:
        """The loop ends, with or without an error: let go of what the step holds. The
        consumer is still open."""

    def describe(self) -> str:
        """Return what the step consumes, said when it starts."""
        return (
            f"consuming {len(self.topics)} topics from the {self.bus.name} bus (group {self.group})"
        )

    def progress(self) -> str:
        """Return the figures of the progress line after the rate (``"12 late, ..."``)."""
        return f"{self.stats.events} events"

    def summary(self) -> str:
        """Return the figures said when the consumer stops."""
        return self.progress()


def consume(
    step: BatchStep,
    bus: Bus,
    *,
    stop: StopFlag | None = None,
    until_idle_s: float | None = None,
    max_seconds: float | None = None,
    max_batches: int | None = None,
) -> None:
    """Run ``step`` on a member of its group of ``bus`` until ``stop`` is set, nothing arrived
    for ``until_idle_s`` seconds (counted as ``events.batching.IdleClock`` does: not while the
    consumer is still joining its group), ``max_seconds`` passed or ``max_batches`` batches
    were submitted. The batch in progress always completes."""
    step.open()
    consumer = bus.consumer(
        group=step.group, topics=list(step.topics), batch_wait_ms=step.batch_wait_ms
    )
    step.consumer = consumer
    metrics = ConsumerMetrics(step.name, bus, step.topics, step.group)
    if hasattr(step.stats, "observer"):
        step.stats.observer = StageObserver(step.name)
    progress = Progress(step)
    started = time.monotonic()
    idle = IdleClock(consumer, until_idle_s)
    batches = 0
    try:
        while not (stop is not None and stop.is_set()):
            if max_seconds is not None and time.monotonic() - started >= max_seconds:
                break
            if not step.ready():
                # Nothing polled, nothing committed: the records wait in the topic.
                time.sleep(step.not_ready_wait_s)
                continue
            messages = consumer.poll(timeout=step.poll_timeout_s, max_records=step.max_records)
            if messages:
                at = time.perf_counter()
                step.submit(messages)
                metrics.batch(messages, time.perf_counter() - at)
                idle.busy()
                batches += 1
            else:
                step.idle()
                if idle.expired():
                    break
            step.tick()
            progress.maybe_log()
            metrics.maybe_lag(consumer)
            if max_batches is not None and batches >= max_batches:
                break
        step.drain()
    finally:
        try:
            step.close()
        finally:
            step.consumer = None
            metrics.close()
            consumer.close()
            progress.maybe_log(force=True)


class Progress:
    """The progress line of a running step, every ``step.log_every_s``: its rate since the last
    line, then its own figures. Nothing is said while it is idle."""

    def __init__(self, step: BatchStep):
        self.step = step
        self._logged = (time.monotonic(), step.stats.events)

    def maybe_log(self, *, force: bool = False) -> None:
        since, events = self._logged
        now = time.monotonic()
        if not force and now - since < self.step.log_every_s:
            return
        seen = self.step.stats.events
        if not force and seen == events:
            self._logged = (now, events)  # idle: nothing to say, and the next rate starts now
            return
        rate = (seen - events) / max(now - since, 1e-9)
        log.info("%s: %.0f events/s, %s", self.step.name, rate, self.step.progress())
        self._logged = (now, seen)


@dataclass
class Backoff:
    """Exponential backoff with full jitter: attempt n waits uniform(0, min(cap, base * 2**n)).
    The relay's wait for the bus, a stream step's for its store."""

    base_s: float = 0.2
    cap_s: float = 30.0
    attempt: int = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap_s, self.base_s * (2**self.attempt))
        self.attempt += 1
        return random.uniform(0, ceiling)  # noqa: S311 (jitter, not secrecy)

    def reset(self) -> None:
        self.attempt = 0


def offsets_commit(step: BatchStep, messages: Sequence[Message], *, wait: bool = True) -> bool:
    """Commit the offsets of ``messages`` on the step's consumer (none: nothing to do); return
    whether they were. A failure is a rebalance that took the partitions away: their new owner
    replays the batches, which the step's idempotent effects make harmless, so it is logged,
    not raised."""
    if step.consumer is None:
        return True
    try:
        step.consumer.commit(messages, wait=wait)
    except BusError as exc:
        log.warning("%s: commit failed, the batches will be replayed: %s", step.name, exc)
        return False
    return True


class Publisher:
    """A step's producer, made at its first use and shared by its threads; ``linger_ms`` as
    ``Bus.producer`` takes it."""

    def __init__(self, bus: Bus, *, linger_ms: int | None = None):
        self.bus = bus
        self.linger_ms = linger_ms
        self._producer: Producer | None = None

    def producer(self) -> Producer:
        if self._producer is None:
            self._producer = self.bus.producer(linger_ms=self.linger_ms)
        return self._producer

    def publish_acked(self, records: list[Record], *, what: str = "dead-letter") -> None:
        """Publish ``records`` and wait for their acknowledgement; raise ``BusError`` if any is
        refused (the batch then fails and is replayed, these records included)."""
        errors = [e for e in self.producer().publish(records) if e is not None]
        if errors:
            raise BusError(f"{what} publish failed: {errors[0]}")

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close()
            self._producer = None
