"""Run one registered consumer: poll, decode, apply each event once, dead-letter poison, commit.

Per batch:
1. decode every record against its topic's schema; a record that cannot be an event of that
   topic (invalid JSON, wrong schema, unknown version, oversized) is poison;
2. apply each event in its own database transaction that first claims
   ``ProcessedEvent(consumer, event_id)``: a redelivered event finds its claim and is skipped,
   so at-least-once input gives exactly-once effects;
3. a handler that keeps failing on an event (``max_attempts``) dead-letters it too, unless the
   failure is the database itself (then the process stops: the event must not be lost);
4. publish the dead letters and wait for their acknowledgement;
5. only then commit the batch's offsets.
A crash anywhere before 5 redelivers the batch; step 2 makes that harmless.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from threading import Event as StopFlag

from django.db import IntegrityError, InterfaceError, OperationalError, transaction

from events.batching import IdleClock
from events.bus import Bus, BusError, Consumer, Message, Record
from events.contracts import Event, PoisonMessage, dead_letter_topic, decode
from events.models import ProcessedEvent
from events.registry import ConsumerSpec

log = logging.getLogger(__name__)

ERROR_HEADER_LIMIT = 1000


@dataclass
class RunStats:
    polled: int = 0
    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    batches: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


def dead_letter_record(consumer: str, message: Message, kind: str, detail: str) -> Record:
    """Return the dead-letter record for ``message``: its bytes as they were, plus where it came
    from and why it was rejected, in headers."""
    error = f"{kind}: {detail}"[:ERROR_HEADER_LIMIT]
    return Record(
        topic=dead_letter_topic(consumer),
        key=message.key,
        value=message.value or b"",
        headers=(
            ("dlq.topic", message.topic.encode()),
            ("dlq.partition", str(message.partition).encode()),
            ("dlq.offset", str(message.offset).encode()),
            ("dlq.error", error.encode()),
            ("dlq.consumer", consumer.encode()),
        ),
    )


def apply_once(
    consumer: str, handler: Callable[[Event], None], event: Event, message: Message
) -> bool:
    """Apply ``handler`` to ``event`` unless ``consumer`` already did; return whether it ran."""
    try:
        with transaction.atomic():
            ProcessedEvent.objects.create(
                consumer=consumer,
                event_id=event.event_id,
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
            )
            handler(event)
    except IntegrityError:
        if ProcessedEvent.objects.filter(consumer=consumer, event_id=event.event_id).exists():
            return False
        raise
    return True


class ConsumerRunner:
    def __init__(
        self,
        spec: ConsumerSpec,
        bus: Bus,
        *,
        max_attempts: int = 3,
        retry_delay_s: float = 0.2,
    ):
        self.spec = spec
        self.bus = bus
        self.handler = spec.load_handler()
        self.max_attempts = max_attempts
        self.retry_delay_s = retry_delay_s
        self.stats = RunStats()
        self._consumer: Consumer | None = None
        self._producer = None

    def run(
        self,
        *,
        stop: StopFlag | None = None,
        max_batches: int | None = None,
        idle_timeout_s: float | None = None,
    ) -> RunStats:
        """Consume until ``stop`` is set, ``max_batches`` batches were processed, or nothing
        arrived for ``idle_timeout_s`` seconds (counted as ``events.batching.IdleClock`` does:
        not while the consumer is still joining its group)."""
        self._consumer = self.bus.consumer(group=self.spec.group, topics=self.spec.topics)
        idle = IdleClock(self._consumer, idle_timeout_s)
        try:
            while not (stop and stop.is_set()):
                messages = self._consumer.poll(timeout=0.5, max_records=self.spec.batch_size)
                if not messages:
                    if idle.expired():
                        break
                    continue
                idle.busy()
                self.process_batch(messages)
                if max_batches is not None and self.stats.batches >= max_batches:
                    break
        finally:
            self._consumer.close()
            if self._producer is not None:
                self._producer.close()
        return self.stats

    def process_batch(self, messages: list[Message]) -> None:
        dead_letters: list[Record] = []
        for message in messages:
            self.stats.polled += 1
            try:
                event = decode(message.topic, message.value)
            except PoisonMessage as poison:
                dead_letters.append(self._dead_letter(message, poison.kind, poison.detail))
                continue
            outcome = self._apply_with_retries(event, message)
            if isinstance(outcome, Record):
                dead_letters.append(outcome)
        if dead_letters:
            self._publish_dead_letters(dead_letters)
        self._consumer.commit(messages)
        self.stats.batches += 1

    def _apply_with_retries(self, event: Event, message: Message) -> Record | None:
        for attempt in range(1, self.max_attempts + 1):
            try:
                if apply_once(self.spec.name, self.handler, event, message):
                    self.stats.applied += 1
                else:
                    self.stats.duplicates += 1
                return None
            except (OperationalError, InterfaceError):
                raise  # the database is down: stop rather than dead-letter good events
            except Exception as exc:
                log.warning(
                    "%s: handler failed on %s (attempt %d/%d): %s",
                    self.spec.name, event.event_id, attempt, self.max_attempts, exc,
                )  # fmt: skip
                if attempt == self.max_attempts:
                    return self._dead_letter(
                        message, "handler_error", f"{type(exc).__name__}: {exc}"
                    )
                time.sleep(self.retry_delay_s * attempt)
        return None

    def _dead_letter(self, message: Message, kind: str, detail: str) -> Record:
        self.stats.dead_lettered += 1
        self.stats.by_kind[kind] = self.stats.by_kind.get(kind, 0) + 1
        log.warning(
            "%s: dead-lettering %s[%d]@%d: %s: %s",
            self.spec.name, message.topic, message.partition, message.offset, kind, detail[:200],
        )  # fmt: skip
        return dead_letter_record(self.spec.name, message, kind, detail)

    def _publish_dead_letters(self, records: list[Record]) -> None:
        if self._producer is None:
            self._producer = self.bus.producer()
        errors = [e for e in self._producer.publish(records) if e is not None]
        if errors:
            # Not acknowledged: do not commit; the batch is redelivered and tried again.
            raise BusError(f"dead-letter publish failed: {errors[0]}")
