"""The Apache Kafka backend, on librdkafka (``confluent-kafka``).

Why librdkafka and not a pure-Python client: a consumer or producer at a steady 1,000 records/s
is mostly client work, for which kafka-python spends several times librdkafka's CPU, and on a
two-core machine that CPU is the scorer's latency (docs/performance.md).

Producer: ``acks=all`` with idempotence on, so retries neither duplicate nor reorder records of a
partition; ``publish`` waits for every acknowledgement (``flush``) and answers per record.
Consumer: no auto-commit, offsets committed after processing, ``earliest`` when the group has no
offset. librdkafka never fails for want of a broker: it retries in the background. So every
client asks the cluster for its metadata when it is made, within ``timeout_s``, and a missing
broker fails fast with a message naming it; a publish that is not acknowledged within its
timeout answers an error for the records left (they may still arrive later: at-least-once, as
a resend after a lost acknowledgement would be).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from confluent_kafka import Consumer as RdConsumer
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka import Producer as RdProducer
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from events.bus import (
    Bus,
    BusError,
    BusUnavailable,
    Consumer,
    EndsRequest,
    LogEnds,
    Message,
    Producer,
    Record,
    Sending,
)

log = logging.getLogger(__name__)
FETCH_MIN_BYTES = 16_384
FETCH_WAIT_MS = 5
# A producer's records wait this long for others to share their request: many senders of a
# record or two (web requests, the relay) make fewer, fuller requests for the broker.
LINGER_MS = 2
# librdkafka's own log lines (connection state, retries), at their syslog levels.
client_log = logging.getLogger("events.backends.librdkafka")


class KafkaBus(Bus):
    name = "kafka"

    def __init__(self, *, bootstrap_servers: Sequence[str] | str, timeout_s: float = 10.0):
        if isinstance(bootstrap_servers, str):
            bootstrap_servers = [s.strip() for s in bootstrap_servers.split(",") if s.strip()]
        self.bootstrap_servers = list(bootstrap_servers)
        self.timeout_s = timeout_s

    def config(self, **extra: Any) -> dict[str, Any]:
        """Return the librdkafka configuration of a client of this bus, with ``extra``."""
        return {
            "bootstrap.servers": ",".join(self.bootstrap_servers),
            "socket.timeout.ms": max(int(self.timeout_s * 1000), 10),
            "logger": client_log,
            "error_cb": _client_error,
            **extra,
        }

    def _unavailable(self, what: str, exc: Exception) -> BusUnavailable:
        return BusUnavailable(
            f"Kafka at {','.join(self.bootstrap_servers)} did not answer ({what}) within "
            f"{self.timeout_s:.0f} s: {type(exc).__name__}: {exc}"
        )

    def reach(self, client: Any, what: str) -> Any:
        """Return the cluster metadata as ``client`` sees it; raise ``BusUnavailable`` when no
        broker answered within the bus's timeout."""
        try:
            return client.list_topics(timeout=self.timeout_s)
        except KafkaException as exc:
            raise self._unavailable(what, exc) from exc

    def _admin(self) -> AdminClient:
        return AdminClient(self.config(**{"client.id": "rideshare-admin"}))

    def producer(self, *, linger_ms: int | None = None) -> KafkaBusProducer:
        return KafkaBusProducer(self, linger_ms=LINGER_MS if linger_ms is None else linger_ms)

    def consumer(
        self, *, group: str, topics: Sequence[str], batch_wait_ms: int | None = None
    ) -> KafkaBusConsumer:
        return KafkaBusConsumer(self, group=group, topics=topics, batch_wait_ms=batch_wait_ms)

    def ensure_topics(self, topics: Sequence[str], *, partitions: int) -> None:
        admin = self._admin()
        existing = set(self.reach(admin, "create topics").topics)
        missing = [t for t in topics if t not in existing]
        if not missing:
            return
        futures = admin.create_topics(
            [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in missing],
            operation_timeout=self.timeout_s,
            request_timeout=self.timeout_s,
        )
        for topic, future in futures.items():
            try:
                future.result()
            except KafkaException as exc:
                # Another process may create it first: that is as good.
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise self._unavailable(f"create topic {topic}", exc) from exc
        # Created on the controller; wait until the cluster's metadata names every partition.
        deadline = time.monotonic() + self.timeout_s
        while True:
            known = self.reach(admin, "create topics").topics
            if all(t in known and len(known[t].partitions) >= partitions for t in missing):
                return
            if time.monotonic() > deadline:
                raise BusUnavailable(f"topics {missing} not visible within {self.timeout_s} s")
            time.sleep(0.05)

    def _partitions(self, client: Any, topic: str) -> list[int]:
        meta = self.reach(client, f"metadata of {topic}").topics.get(topic)
        if meta is None or meta.error is not None:
            return []
        return sorted(meta.partitions)

    def committed(self, group: str, topic: str) -> dict[int, int]:
        # A consumer that joins nothing: it only asks the group coordinator.
        client = RdConsumer(self.config(**{"group.id": group, "enable.auto.commit": False}))
        try:
            partitions = self._partitions(client, topic)
            offsets = client.committed(
                [TopicPartition(topic, p) for p in partitions], timeout=self.timeout_s
            )
        except KafkaException as exc:
            raise self._unavailable("group offsets", exc) from exc
        finally:
            client.close()
        return {tp.partition: tp.offset for tp in offsets if tp.offset >= 0}

    def end_offsets(self, topic: str) -> dict[int, int]:
        client = RdConsumer(self.config(**{"group.id": "rideshare-offsets"}))
        try:
            return {
                p: client.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=self.timeout_s, cached=False
                )[1]
                for p in self._partitions(client, topic)
            }
        except KafkaException as exc:
            raise self._unavailable("end offsets", exc) from exc
        finally:
            client.close()

    def log_ends(self, topics: Sequence[str]) -> KafkaLogEnds:
        return KafkaLogEnds(self, topics)


class KafkaLogEnds(LogEnds):
    """End offsets by one ``ListOffsets`` request per leader (librdkafka's admin client), the
    partitions from metadata read again every ``METADATA_S`` (a topic created meanwhile)."""

    METADATA_S = 10.0

    def __init__(self, bus: KafkaBus, topics: Sequence[str]):
        self.bus = bus
        self.topics = tuple(topics)
        self.admin = AdminClient(bus.config(**{"client.id": "rideshare-log-ends"}))
        self._partitions: list[TopicPartition] = []
        self._read_at = -float("inf")

    def read(self, *, timeout_s: float) -> dict[tuple[str, int], int]:
        return self.request(timeout_s=timeout_s)()

    def request(self, *, timeout_s: float) -> EndsRequest:
        """Send the ``ListOffsets`` request now; the returned call waits for its answer."""
        try:
            if time.monotonic() - self._read_at >= self.METADATA_S:
                known = self.admin.list_topics(timeout=timeout_s).topics
                self._partitions = [
                    TopicPartition(t, p)
                    for t in self.topics
                    if t in known and known[t].error is None
                    for p in sorted(known[t].partitions)
                ]
                self._read_at = time.monotonic()
            if not self._partitions:
                return dict
            futures = self.admin.list_offsets(
                dict.fromkeys(self._partitions, OffsetSpec.latest()), request_timeout=timeout_s
            )
        except KafkaException as exc:
            self._read_at = -float("inf")
            raise self.bus._unavailable("end offsets", exc) from exc

        def answer() -> dict[tuple[str, int], int]:
            try:
                return {
                    (tp.topic, tp.partition): future.result(timeout=timeout_s).offset
                    for tp, future in futures.items()
                }
            except (KafkaException, FutureTimeout) as exc:
                self._read_at = -float("inf")
                raise self.bus._unavailable("end offsets", exc) from exc

        return answer


_WAITING = object()


def _client_error(error: KafkaError) -> None:
    # Transient (a broker down, a connection refused): librdkafka retries by itself, and the
    # calls that wait on it report what did not happen in time.
    level = logging.ERROR if error.fatal() else logging.DEBUG
    client_log.log(level, "librdkafka: %s", error)


class KafkaBusProducer(Producer):
    def __init__(self, bus: KafkaBus, *, linger_ms: int = LINGER_MS):
        self.bus = bus
        self.settings = bus.config(
            **{
                "client.id": "rideshare-producer",
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": linger_ms,
                "message.timeout.ms": int(bus.timeout_s * 2000),
            }
        )
        self.producer = RdProducer(self.settings)
        bus.reach(self.producer, "producer")

    def send(self, records: Sequence[Record]) -> KafkaSending:
        """Queue ``records`` in order; the acknowledgements arrive in the background and are
        served by this producer's next ``send`` or a ``KafkaSending.result``."""
        sending = KafkaSending(self, records)
        for i, record in enumerate(records):
            while True:
                try:
                    self.producer.produce(
                        record.topic,
                        value=record.value,
                        key=record.key.encode() if record.key is not None else None,
                        headers=list(record.headers),
                        on_delivery=lambda error, _message, i=i: sending.delivered(i, error),
                    )
                    break
                except BufferError:
                    # The local queue is full: serve acknowledgements, then try again.
                    self.producer.poll(0.05)
                except KafkaException as exc:
                    sending.delivered(i, BusError(f"Kafka publish failed: {exc}"))
                    break
        # Serve the acknowledgements that came in meanwhile (their callbacks run only here).
        self.producer.poll(0)
        return sending

    def close(self) -> None:
        self.producer.flush(5)


class KafkaSending(Sending):
    def __init__(self, producer: KafkaBusProducer, records: Sequence[Record]):
        self.producer = producer
        self.records = records
        # Per record: None once acknowledged, the error, or _WAITING.
        self.results: list[Any] = [_WAITING] * len(records)
        self.waiting = len(records)

    def delivered(self, i: int, error: KafkaError | Exception | None) -> None:
        if isinstance(error, KafkaError):
            error = BusError(f"Kafka publish failed: {error}")
        self.results[i] = error
        self.waiting -= 1

    def result(self, timeout: float = 30.0) -> list[Exception | None]:
        if self.waiting:
            # Sends what is queued now, linger or not, and serves the acknowledgements.
            self.producer.producer.flush(timeout)
        missing = BusError(f"no acknowledgement within {timeout:.0f} s")
        return [missing if r is _WAITING else r for r in self.results]


class KafkaBusConsumer(Consumer):
    def __init__(
        self,
        bus: KafkaBus,
        *,
        group: str,
        topics: Sequence[str],
        batch_wait_ms: int | None = None,
    ):
        self.bus = bus
        self.group = group
        self.topics = tuple(topics)
        self.consumer = RdConsumer(
            bus.config(
                **{
                    "client.id": f"rideshare-{group}",
                    "group.id": group,
                    "enable.auto.commit": False,
                    "auto.offset.reset": "earliest",
                    "session.timeout.ms": 10_000,
                    "heartbeat.interval.ms": 3_000,
                    "max.poll.interval.ms": 300_000,
                    "on_commit": self._committed,
                    # A fetch waits for 16 KB or 5 ms, whichever first: records arriving every
                    # millisecond otherwise draw a fetch each (a request the broker serves and
                    # this client decodes), for at most 5 ms of added latency. With a batch
                    # wait, the wait decides (up to 1 MB).
                    **(
                        {"fetch.min.bytes": FETCH_MIN_BYTES, "fetch.wait.max.ms": FETCH_WAIT_MS}
                        if batch_wait_ms is None
                        else {"fetch.min.bytes": 1 << 20, "fetch.wait.max.ms": batch_wait_ms}
                    ),
                }
            )
        )
        try:
            bus.reach(self.consumer, "consumer")
        except BusUnavailable:
            self.consumer.close()
            raise
        self.consumer.subscribe(list(self.topics))

    def poll(self, *, timeout: float = 1.0, max_records: int = 500) -> list[Message]:
        try:
            # The first record as soon as there is one; then what has arrived with it.
            # (``consume`` alone waits out its whole timeout unless the batch fills.)
            first = self.consumer.poll(timeout)
            if first is None:
                return []
            raw = [first]
            if max_records > 1:
                raw += self.consumer.consume(max_records - 1, 0)
        except KafkaException as exc:
            raise BusError(f"Kafka poll failed: {exc}") from exc
        messages = []
        for r in raw:
            error = r.error()
            if error is not None:
                if error.fatal():
                    raise BusError(f"Kafka poll failed: {error}")
                log.warning("kafka consumer %s: %s", self.group, error)
                continue
            key = r.key()
            messages.append(
                Message(
                    topic=r.topic(),
                    partition=r.partition(),
                    offset=r.offset(),
                    key=key.decode() if key is not None else None,
                    value=r.value(),
                    headers=tuple(r.headers() or ()),
                    timestamp_ms=r.timestamp()[1],
                )
            )
        return messages

    def commit(self, messages: Sequence[Message], *, wait: bool = True) -> None:
        upto: dict[tuple[str, int], int] = {}
        for m in messages:
            key = (m.topic, m.partition)
            upto[key] = max(upto.get(key, 0), m.offset + 1)
        if not upto:
            return
        try:
            self.consumer.commit(
                offsets=[TopicPartition(t, p, o) for (t, p), o in upto.items()],
                asynchronous=not wait,
            )
        except KafkaException as exc:
            raise BusError(f"Kafka commit failed: {exc}") from exc

    def _committed(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        # Served by ``poll``: the outcome of a commit not waited for (and of the others).
        if error is not None:
            log.warning(
                "kafka consumer %s: commit failed, the records will be delivered again: %s",
                self.group, error,
            )  # fmt: skip

    def assignment(self) -> set[tuple[str, int]]:
        return {(tp.topic, tp.partition) for tp in self.consumer.assignment()}

    def close(self) -> None:
        self.consumer.close()
