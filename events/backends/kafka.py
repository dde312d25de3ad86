"""The Apache Kafka backend (kafka-python 3.x).

Producer: ``acks=all`` with idempotence on, so retries neither duplicate nor reorder records of a
partition. Consumer: no auto-commit, offsets committed after processing, ``earliest`` when the
group has no offset. Every timeout is bounded (``timeout_s``), so a missing broker fails fast with
a message naming it instead of blocking for kafka-python's 30 s defaults.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata

from events.bus import Bus, BusError, BusUnavailable, Consumer, Message, Producer, Record

log = logging.getLogger(__name__)


class KafkaBus(Bus):
    name = "kafka"

    def __init__(self, *, bootstrap_servers: Sequence[str] | str, timeout_s: float = 10.0):
        if isinstance(bootstrap_servers, str):
            bootstrap_servers = [s.strip() for s in bootstrap_servers.split(",") if s.strip()]
        self.bootstrap_servers = list(bootstrap_servers)
        self.timeout_ms = int(timeout_s * 1000)

    def _unavailable(self, what: str, exc: Exception) -> BusUnavailable:
        return BusUnavailable(
            f"Kafka at {','.join(self.bootstrap_servers)} did not answer ({what}) within "
            f"{self.timeout_ms / 1000:.0f} s: {type(exc).__name__}: {exc}"
        )

    def _admin(self) -> KafkaAdminClient:
        try:
            return KafkaAdminClient(
                bootstrap_servers=self.bootstrap_servers,
                client_id="rideshare-admin",
                bootstrap_timeout_ms=self.timeout_ms,
                request_timeout_ms=self.timeout_ms,
            )
        except KafkaError as exc:
            raise self._unavailable("admin", exc) from exc

    def producer(self) -> KafkaBusProducer:
        return KafkaBusProducer(self)

    def consumer(self, *, group: str, topics: Sequence[str]) -> KafkaBusConsumer:
        return KafkaBusConsumer(self, group=group, topics=topics)

    def ensure_topics(self, topics: Sequence[str], *, partitions: int) -> None:
        admin = self._admin()
        try:
            existing = set(admin.list_topics())
            missing = [t for t in topics if t not in existing]
            for topic in missing:
                # Another process may create it first: that is as good.
                with contextlib.suppress(TopicAlreadyExistsError):
                    admin.create_topics(
                        [NewTopic(topic, num_partitions=partitions, replication_factor=1)]
                    )
            if missing:
                admin.wait_for_topics(missing, timeout_ms=self.timeout_ms)
        except KafkaError as exc:
            raise self._unavailable("create topics", exc) from exc
        finally:
            admin.close()

    def committed(self, group: str, topic: str) -> dict[int, int]:
        admin = self._admin()
        try:
            offsets = admin.list_group_offsets(group).get(group, {})
        except KafkaError as exc:
            raise self._unavailable("group offsets", exc) from exc
        finally:
            admin.close()
        return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}

    def end_offsets(self, topic: str) -> dict[int, int]:
        consumer = self._plain_consumer()
        try:
            partitions = consumer.partitions_for_topic(topic) or set()
            ends = consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        except KafkaError as exc:
            raise self._unavailable("end offsets", exc) from exc
        finally:
            consumer.close()
        return {tp.partition: offset for tp, offset in ends.items()}

    def _plain_consumer(self) -> KafkaConsumer:
        try:
            return KafkaConsumer(
                bootstrap_servers=self.bootstrap_servers,
                bootstrap_timeout_ms=self.timeout_ms,
                request_timeout_ms=self.timeout_ms,
                enable_auto_commit=False,
            )
        except KafkaError as exc:
            raise self._unavailable("consumer", exc) from exc


class KafkaBusProducer(Producer):
    def __init__(self, bus: KafkaBus):
        self.bus = bus
        try:
            self.producer = KafkaProducer(
                bootstrap_servers=bus.bootstrap_servers,
                client_id="rideshare-producer",
                acks="all",
                enable_idempotence=True,
                max_in_flight_requests_per_connection=5,
                linger_ms=2,
                compression_type=None,
                bootstrap_timeout_ms=bus.timeout_ms,
                request_timeout_ms=bus.timeout_ms,
                delivery_timeout_ms=bus.timeout_ms * 2,
                max_block_ms=bus.timeout_ms,
            )
        except KafkaError as exc:
            raise bus._unavailable("producer", exc) from exc

    def publish(
        self, records: Sequence[Record], *, timeout: float = 30.0
    ) -> list[Exception | None]:
        futures = []
        for record in records:
            try:
                futures.append(
                    self.producer.send(
                        record.topic,
                        value=record.value,
                        key=record.key.encode() if record.key is not None else None,
                        headers=list(record.headers),
                    )
                )
            except KafkaError as exc:
                futures.append(exc)
        try:
            self.producer.flush(timeout=timeout)
        except KafkaError as exc:
            log.warning("flush did not complete: %s", exc)
        results: list[Exception | None] = []
        for future in futures:
            if isinstance(future, Exception):
                results.append(future)
            elif not future.is_done:
                results.append(BusError(f"no acknowledgement within {timeout:.0f} s"))
            elif future.failed():
                results.append(future.exception)
            else:
                results.append(None)
        return results

    def close(self) -> None:
        self.producer.close(timeout=5)


class KafkaBusConsumer(Consumer):
    def __init__(self, bus: KafkaBus, *, group: str, topics: Sequence[str]):
        self.bus = bus
        self.group = group
        self.topics = tuple(topics)
        try:
            self.consumer = KafkaConsumer(
                *self.topics,
                bootstrap_servers=bus.bootstrap_servers,
                client_id=f"rideshare-{group}",
                group_id=group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                bootstrap_timeout_ms=bus.timeout_ms,
                request_timeout_ms=max(bus.timeout_ms, 31_000),
                session_timeout_ms=10_000,
                heartbeat_interval_ms=3_000,
                max_poll_interval_ms=300_000,
            )
        except KafkaError as exc:
            raise bus._unavailable("consumer", exc) from exc

    def poll(self, *, timeout: float = 1.0, max_records: int = 500) -> list[Message]:
        try:
            batch = self.consumer.poll(timeout_ms=int(timeout * 1000), max_records=max_records)
        except KafkaError as exc:
            raise BusError(f"Kafka poll failed: {type(exc).__name__}: {exc}") from exc
        messages = []
        for records in batch.values():
            for r in records:
                messages.append(
                    Message(
                        topic=r.topic,
                        partition=r.partition,
                        offset=r.offset,
                        key=r.key.decode() if r.key is not None else None,
                        value=r.value,
                        headers=tuple(r.headers or ()),
                        timestamp_ms=r.timestamp,
                    )
                )
        return messages

    def commit(self, messages: Sequence[Message]) -> None:
        upto: dict[TopicPartition, int] = {}
        for m in messages:
            tp = TopicPartition(m.topic, m.partition)
            upto[tp] = max(upto.get(tp, 0), m.offset + 1)
        if not upto:
            return
        try:
            self.consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in upto.items()})
        except KafkaError as exc:
            raise BusError(f"Kafka commit failed: {type(exc).__name__}: {exc}") from exc

    def assignment(self) -> set[tuple[str, int]]:
        return {(tp.topic, tp.partition) for tp in self.consumer.assignment()}

    def close(self) -> None:
        self.consumer.close(autocommit=False)
