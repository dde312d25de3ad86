"""Run one registered consumer: poll, decode, apply each event once, dead-letter poison, commit.

Per batch:
1. decode every record against its topic's schema; a record that cannot be an event of that
   topic (invalid JSON, wrong schema, unknown version, oversized) is poison;
2. apply each event in its own database transaction that first claims
   ``ProcessedEvent(consumer, event_id)``: a redelivered event finds its claim and is skipped,
   so at-least-once input gives exactly-once effects. A consumer with a batch handler
   (``ConsumerSpec.batch_handler``) claims and applies the batch's new events in one
   transaction instead; if that fails for any reason but the database's, nothing of it stays
   and its events go the one-by-one way, where a failing event is retried and dead-lettered
   alone;
3. a handler that keeps failing on an event (``max_attempts``) dead-letters it too, unless the
   failure is the database itself (then the process stops: the event must not be lost); one
   that raises ``PoisonMessage`` (an event it can never apply: a verdict for an unknown
   payment) dead-letters it at once, its transaction rolled back;
4. publish the dead letters and wait for their acknowledgement;
5. only then commit the batch's offsets.
A crash anywhere before 5 redelivers the batch; step 2 makes that harmless.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from threading import Event as StopFlag

from django.db import IntegrityError, InterfaceError, OperationalError, transaction

from events.bus import Bus, Message, Record
from events.contracts import Event, PoisonMessage, dead_letter_topic
from events.deadletters import DeadLetterer
from events.models import ProcessedEvent
from events.registry import ConsumerSpec
from events.streaming import BatchStep, ConsumerOptions, Publisher, consume, offsets_commit

log = logging.getLogger(__name__)


@dataclass
class RunStats:
    polled: int = 0
    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    batches: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def events(self) -> int:
        return self.polled


def apply_once(
    consumer: str, handler: Callable[[Event], None], event: Event, message: Message
) -> bool:
    """Apply ``handler`` to ``event`` unless ``consumer`` already did; return whether it ran."""
    try:
        with transaction.atomic():
            _claim(consumer, event, message).save(force_insert=True)
            handler(event)
    except IntegrityError:
        if ProcessedEvent.objects.filter(consumer=consumer, event_id=event.event_id).exists():
            return False
        raise
    return True


def _claim(consumer: str, event: Event, message: Message) -> ProcessedEvent:
    """Return ``consumer``'s claim of ``event`` (read from ``message``), not yet saved."""
    return ProcessedEvent(
        consumer=consumer,
        event_id=event.event_id,
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
    )


class ConsumerRunner(BatchStep):
    """A registered per-event consumer (``ConsumerSpec.handler``) as a step of the loop
    (``events.streaming.consume``): each batch decoded, applied and committed as above."""

    poll_timeout_s = 0.5

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
        self.name = spec.name
        self.group = spec.group
        self.topics = spec.topics
        self.max_records = spec.batch_size
        self.handler = spec.load_handler()
        self.batch_handler = spec.load_batch_handler()
        self.max_attempts = max_attempts
        self.retry_delay_s = retry_delay_s
        self.stats = RunStats()
        self.publisher = Publisher(bus)
        self.dead_letters = DeadLetterer(spec.name, dead_letter_topic(spec.name))
        self.dead_letters.counts = self.stats.by_kind

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
        consume(self, self.bus, stop=stop, until_idle_s=idle_timeout_s, max_batches=max_batches)
        return self.stats

    def submit(self, messages: Sequence[Message]) -> None:
        self.process_batch(list(messages))

    def close(self) -> None:
        self.publisher.close()

    def progress(self) -> str:
        return (
            f"{self.stats.polled} events, {self.stats.applied} applied, "
            f"{self.stats.duplicates} duplicates, {self.stats.dead_lettered} dead-lettered"
        )

    def summary(self) -> str:
        return (
            f"applied {self.stats.applied}, duplicates {self.stats.duplicates}, "
            f"dead-lettered {self.stats.dead_lettered}"
        )

    def process_batch(self, messages: list[Message]) -> None:
        dead_letters: list[Record] = []
        pairs: list[tuple[Event, Message]] = []
        for message in messages:
            self.stats.polled += 1
            decoded = self.decode_or_dead_letter(message, dead_letters)
            if decoded is not None:
                pairs.append((decoded[0], message))
        if self.batch_handler is None or not self._apply_batch(pairs):
            for event, message in pairs:
                outcome = self._apply_with_retries(event, message)
                if isinstance(outcome, Record):
                    dead_letters.append(outcome)
        if dead_letters:
            # Not acknowledged: do not commit; the batch is redelivered and tried again.
            self.publisher.publish_acked(dead_letters)
        # A commit refused (the broker restarting, the group rebalancing) is logged, not raised:
        # the batch is delivered again, and apply_once makes that harmless.
        offsets_commit(self, messages)
        self.stats.batches += 1

    def _apply_batch(self, pairs: list[tuple[Event, Message]]) -> bool:
        """Claim and apply the events of ``pairs`` not applied before, all in one transaction
        (``batch_handler``); return whether that was done. A database that fails stops the
        consumer (raised); any other failure (a poison event, a bug, another consumer's claim)
        leaves nothing written and returns False."""
        if not pairs:
            return True
        consumer = self.spec.name
        try:
            with transaction.atomic():
                done = set(
                    ProcessedEvent.objects.filter(
                        consumer=consumer, event_id__in=[e.event_id for e, _ in pairs]
                    ).values_list("event_id", flat=True)
                )
                fresh: dict = {}
                for event, message in pairs:
                    if event.event_id not in done:
                        fresh.setdefault(event.event_id, (event, message))
                ProcessedEvent.objects.bulk_create(
                    [_claim(consumer, event, message) for event, message in fresh.values()]
                )
                if fresh:
                    self.batch_handler([event for event, _ in fresh.values()])
        except (OperationalError, InterfaceError):
            raise
        except Exception as exc:
            log.warning(
                "%s: a batch of %d events failed as one (%s: %s): applying them one by one",
                consumer, len(pairs), type(exc).__name__, exc,
            )  # fmt: skip
            return False
        self.stats.applied += len(fresh)
        self.stats.duplicates += len(pairs) - len(fresh)
        return True

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
            except PoisonMessage as poison:
                return self.dead_letter(message, poison.kind, poison.detail)
            except Exception as exc:
                log.warning(
                    "%s: handler failed on %s (attempt %d/%d): %s",
                    self.spec.name, event.event_id, attempt, self.max_attempts, exc,
                )  # fmt: skip
                if attempt == self.max_attempts:
                    return self.dead_letter(
                        message, "handler_error", f"{type(exc).__name__}: {exc}"
                    )
                time.sleep(self.retry_delay_s * attempt)
        return None

    def dead_letter(self, message: Message, kind: str, detail: str) -> Record:
        self.stats.dead_lettered += 1
        return super().dead_letter(message, kind, detail)


def consumer_step(spec: ConsumerSpec, bus: Bus, options: ConsumerOptions) -> BatchStep:
    """Return the step that runs the registered consumer ``spec`` on ``bus``: its factory's
    (imported now) for a step consumer, a ``ConsumerRunner`` for a handler consumer."""
    if spec.step is not None:
        return spec.load_step()(bus, options)
    runner = ConsumerRunner(spec, bus)
    if options.group:
        runner.group = options.group
    if options.max_records:
        runner.max_records = options.max_records
    if options.poll_timeout_s is not None:
        runner.poll_timeout_s = options.poll_timeout_s
    return runner
