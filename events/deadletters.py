"""Dead letters: the records a consumer rejects, kept byte for byte on a topic of its own with
where they came from and why, so they can be read, fixed and redriven.

One name per consumer (``events.contracts.dead_letter_topic``, beside every other topic), one
record layout (``DLQ_HEADERS``), one reader
(``dead_letter_read``, ``dead_letters_read``) and one redrive (``redrive_record``,
``dead_letters_redrive``: ``manage.py deadletters``). Pure Python: no Django, so every
consumer (and the tool that lists them) imports it without loading models.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from events.bus import Bus, BusError, Message, Record, records_read
from events.contracts import dead_letter_topic
from events.telemetry import DEAD_LETTERS

log = logging.getLogger(__name__)

# Header names of records on a dead-letter topic.
DLQ_HEADERS = ("dlq.topic", "dlq.partition", "dlq.offset", "dlq.error", "dlq.consumer")
# A redriven record names the dead letter it came from (``<topic>[<partition>]@<offset>``).
REDRIVEN_HEADER = "dlq.redriven-from"
ERROR_HEADER_LIMIT = 1000


def dead_letter_record(
    consumer: str, message: Message, kind: str, detail: str, *, topic: str | None = None
) -> Record:
    """Return the dead-letter record for ``message``: its bytes as they were, plus where it came
    from and why it was rejected, in headers; on ``topic`` (the consumer's dead-letter topic
    unless given)."""
    error = f"{kind}: {detail}"[:ERROR_HEADER_LIMIT]
    return Record(
        topic=topic or dead_letter_topic(consumer),
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


@dataclass
class DeadLetterer:
    """Build the dead letters of consumer ``consumer`` on ``topic``, logging each and counting
    them by kind (``counts``)."""

    consumer: str
    topic: str
    counts: dict[str, int] = field(default_factory=dict)

    def reject(self, message: Message, kind: str, detail: str) -> Record:
        """Return the dead-letter record of ``message`` (rejected as ``kind``: ``detail``)."""
        self.counts[kind] = self.counts.get(kind, 0) + 1
        DEAD_LETTERS.labels(self.consumer, kind).inc()
        log.warning(
            "%s: dead-lettering %s[%d]@%d: %s: %s",
            self.consumer, message.topic, message.partition, message.offset, kind, detail[:200],
        )  # fmt: skip
        return dead_letter_record(self.consumer, message, kind, detail, topic=self.topic)


@dataclass(frozen=True)
class DeadLetter:
    """A record read back from a dead-letter topic: where it sits (``partition``, ``offset``),
    where it came from (``origin_*``), why (``kind``, ``detail``), when it was dead-lettered,
    and its bytes."""

    partition: int
    offset: int
    origin_topic: str
    origin_partition: int
    origin_offset: int
    consumer: str
    kind: str
    detail: str
    key: str | None
    value: bytes
    at: datetime | None

    @property
    def origin(self) -> str:
        return f"{self.origin_topic}[{self.origin_partition}]@{self.origin_offset}"


class NotADeadLetter(ValueError):
    """A record on a dead-letter topic without the dead-letter headers."""


def dead_letter_read(message: Message) -> DeadLetter:
    """Return ``message`` (read from a dead-letter topic) as a ``DeadLetter``; raise
    ``NotADeadLetter`` if it lacks the headers every dead letter carries."""
    missing = [name for name in DLQ_HEADERS if message.header(name) is None]
    if missing:
        raise NotADeadLetter(
            f"{message.topic}[{message.partition}]@{message.offset} lacks {', '.join(missing)}"
        )
    kind, _, detail = message.header("dlq.error").decode().partition(": ")
    at = (
        datetime.fromtimestamp(message.timestamp_ms / 1000, tz=UTC)
        if message.timestamp_ms
        else None
    )
    return DeadLetter(
        partition=message.partition,
        offset=message.offset,
        origin_topic=message.header("dlq.topic").decode(),
        origin_partition=int(message.header("dlq.partition")),
        origin_offset=int(message.header("dlq.offset")),
        consumer=message.header("dlq.consumer").decode(),
        kind=kind,
        detail=detail,
        key=message.key,
        value=message.value or b"",
        at=at,
    )


def redrive_record(letter: DeadLetter, *, dead_letter_topic_name: str) -> Record:
    """Return the record that puts ``letter`` back on its origin topic, as it was (same key,
    same bytes), naming the dead letter it came from in a header. Consumers are idempotent
    on the event id, so a redrive of an event already applied changes nothing."""
    source = f"{dead_letter_topic_name}[{letter.partition}]@{letter.offset}"
    return Record(
        topic=letter.origin_topic,
        key=letter.key,
        value=letter.value,
        headers=((REDRIVEN_HEADER, source.encode()),),
    )


def dead_letters_read(bus: Bus, topic: str, *, timeout_s: float = 30.0) -> list[DeadLetter]:
    """Return every record on dead-letter topic ``topic`` of ``bus``, as it stands now, in the
    order of their origin positions. Read by a member of a throwaway group that commits nothing, so
    it moves no consumer's position; raise ``BusError`` if the topic's end is not reached within
    ``timeout_s`` (a Kafka group still joining counts)."""
    messages = records_read(bus, [topic], reader="deadletters-reader", timeout_s=timeout_s)
    letters = [dead_letter_read(message) for message in messages]
    # In the order their records had on the origin topics (dead letters of one origin
    # partition may sit on several dead-letter partitions).
    return sorted(
        letters,
        key=lambda x: (x.origin_topic, x.origin_partition, x.origin_offset, x.partition, x.offset),
    )


def dead_letters_redrive(bus: Bus, topic: str, letters: Sequence[DeadLetter]) -> int:
    """Re-publish ``letters`` (read from ``topic``) to their origin topics, each as it was;
    return how many were acknowledged; raise ``BusError`` if any was refused (the ones before
    it may have gone: a repeat of the redrive is harmless to idempotent consumers)."""
    if not letters:
        return 0
    producer = bus.producer()
    try:
        records = [redrive_record(letter, dead_letter_topic_name=topic) for letter in letters]
        errors = [e for e in producer.publish(records) if e is not None]
    finally:
        producer.close()
    if errors:
        raise BusError(f"redrive of {len(errors)} of {len(letters)} records failed: {errors[0]}")
    return len(letters)
