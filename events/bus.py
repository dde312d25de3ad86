"""The event bus interface, shared by the Kafka backend and the embedded durable log.

Semantics every backend keeps (``tests/events/test_bus_contract.py`` runs against both):

- ``Producer.publish`` sends records in order and returns only when each is acknowledged
  (durably stored) or has failed; the result is one error-or-None per record. ``Producer.send``
  sends the same way without waiting: its ``Sending.result`` waits.
- A record's partition is chosen by its key; records with the same key keep their order.
- A consumer belongs to a group; the group's members share the topic's partitions; a member
  starts from the group's committed offset, or from the earliest record when there is none.
- Offsets are committed explicitly, after processing (at-least-once): a record whose offset was
  not committed is delivered again to whichever member owns its partition next. A commit not
  waited for is sent in order with the member's other commits.
"""

from __future__ import annotations

import abc
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class Record:
    """A record to publish."""

    topic: str
    value: bytes
    key: str | None = None
    headers: Headers = ()


@dataclass(frozen=True)
class Message:
    """A record as consumed, with where it was stored."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes | None
    headers: Headers = ()
    timestamp_ms: int = 0

    def header(self, name: str) -> bytes | None:
        return next((value for key, value in self.headers if key == name), None)


class BusError(RuntimeError):
    """The bus failed an operation; the message says which backend and why."""


class BusUnavailable(BusError):
    """The bus could not be reached within its bounded timeouts."""


class Sending(abc.ABC):
    """Records handed to a producer by ``Producer.send``, acknowledged or not yet."""

    records: Sequence[Record]

    @abc.abstractmethod
    def result(self, timeout: float = 30.0) -> list[Exception | None]:
        """Wait up to ``timeout`` seconds for the records' acknowledgements; return, per
        record, None once acknowledged or the error (a timeout is an error)."""


class Sent(Sending):
    """A sending whose outcome is known: the records were published synchronously."""

    def __init__(self, records: Sequence[Record], results: list[Exception | None]):
        self.records = records
        self.results = results

    def result(self, timeout: float = 30.0) -> list[Exception | None]:
        return self.results


class Producer(abc.ABC):
    """Publishes records; safe to share between threads."""

    def publish(
        self, records: Sequence[Record], *, timeout: float = 30.0
    ) -> list[Exception | None]:
        """Publish ``records`` in order; return, per record, None once acknowledged or the error."""
        return self.send(records).result(timeout)

    @abc.abstractmethod
    def send(self, records: Sequence[Record]) -> Sending:
        """Start publishing ``records`` in order and return without waiting for their
        acknowledgements (a backend that cannot returns once they are stored)."""

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release the producer's connections."""


class Consumer(abc.ABC):
    group: str
    topics: tuple[str, ...]

    @abc.abstractmethod
    def poll(self, *, timeout: float = 1.0, max_records: int = 500) -> list[Message]:
        """Return up to ``max_records`` records from the partitions this member owns; wait up to
        ``timeout`` seconds when none is there."""

    @abc.abstractmethod
    def commit(self, messages: Sequence[Message], *, wait: bool = True) -> None:
        """Record that the group has processed ``messages`` (and everything before them in
        their partitions). ``wait=False``: send the commit and return (a backend that cannot
        returns once it is stored); one that fails is logged, and the records are delivered
        again, as if it had never been sent."""

    @abc.abstractmethod
    def assignment(self) -> set[tuple[str, int]]:
        """Return the (topic, partition) pairs this member owns now."""

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Leave the group and release connections."""


class Bus(abc.ABC):
    name: str

    @abc.abstractmethod
    def producer(self, *, linger_ms: int | None = None) -> Producer:
        """Return a producer. ``linger_ms``: how long the client may hold a record for later ones
        to share its request; the backend's short default when None, 0 for a producer whose
        ``send`` hands over whole batches (a wait would only delay them). A hint: the embedded
        log ignores it."""

    @abc.abstractmethod
    def consumer(
        self, *, group: str, topics: Sequence[str], batch_wait_ms: int | None = None
    ) -> Consumer:
        """Return a member of ``group`` reading ``topics``. ``batch_wait_ms``: how long the
        broker may hold a fetch for records to accumulate (bigger batches and fewer requests
        for that much more latency), for a consumer whose batches cost more than their
        records; the backend's short default when None. A hint: the embedded log ignores it."""

    @abc.abstractmethod
    def ensure_topics(self, topics: Sequence[str], *, partitions: int) -> None:
        """Create the topics that do not exist yet, with ``partitions`` partitions each."""

    @abc.abstractmethod
    def committed(self, group: str, topic: str) -> dict[int, int]:
        """Return the group's committed offset per partition of ``topic`` (next to read)."""

    @abc.abstractmethod
    def end_offsets(self, topic: str) -> dict[int, int]:
        """Return, per partition of ``topic``, the offset the next record will get."""

    @abc.abstractmethod
    def log_ends(self, topics: Sequence[str]) -> LogEnds:
        """Return a reader of the end offsets of every partition of ``topics``, for a caller
        that asks again and again (a scorer, per batch): one long-lived client, one request."""


# A log-ends request under way: calling it waits for and returns (topic, partition) -> the
# offset the partition's next record will get (``LogEnds.request``).
EndsRequest = Callable[[], dict[tuple[str, int], int]]


class LogEnds(abc.ABC):
    """The end offsets of a fixed set of topics, read on demand."""

    @abc.abstractmethod
    def read(self, *, timeout_s: float) -> dict[tuple[str, int], int]:
        """Return (topic, partition) -> the offset the partition's next record will get, every
        partition of the topics that exist (a topic not created yet has none); raise
        ``BusUnavailable`` when the log did not answer within ``timeout_s``."""

    def request(self, *, timeout_s: float) -> EndsRequest:
        """Start a read and return what finishes it (``read``'s answer and errors): a caller
        can ask right after its own poll and take the answer when it needs it, so the round
        trip overlaps its own work. Here the read happens when the answer is taken."""
        return lambda: self.read(timeout_s=timeout_s)

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release the client."""


def records_read(
    bus: Bus, topics: Sequence[str], *, reader: str = "reader", timeout_s: float = 30.0
) -> list[Message]:
    """Return every record of ``topics`` as they stand now (up to the end offsets when called),
    in no particular order. Read by a member of a throwaway group (named after ``reader``) that
    commits nothing, so it moves no consumer's position; raise ``BusError`` if the ends are not
    reached within ``timeout_s`` (a Kafka group still joining counts)."""
    ends = {(t, p): end for t in topics for p, end in bus.end_offsets(t).items() if end > 0}
    if not ends:
        return []
    member = bus.consumer(
        group=f"{reader}-{uuid.uuid4().hex[:12]}", topics=sorted({t for t, _ in ends})
    )
    seen: dict[tuple[str, int, int], Message] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while any((t, p, end - 1) not in seen for (t, p), end in ends.items()):
            if time.monotonic() >= deadline:
                raise BusError(f"{', '.join(topics)}: not read to the end within {timeout_s:g} s")
            for message in member.poll(timeout=0.5, max_records=1000):
                if message.offset < ends.get((message.topic, message.partition), 0):
                    seen[(message.topic, message.partition, message.offset)] = message
    finally:
        member.close()
    return list(seen.values())


def bus_from_settings() -> Bus:
    """Return the bus chosen by ``EVENT_BUS`` (``embedded`` or ``kafka``)."""
    from django.conf import settings

    if settings.EVENT_BUS == "kafka":
        from events.backends.kafka import KafkaBus

        return KafkaBus(
            bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
            timeout_s=settings.KAFKA_TIMEOUT_SECONDS,
        )
    from events.backends.embedded import EmbeddedBus

    return EmbeddedBus(settings.EVENT_LOG_PATH)
