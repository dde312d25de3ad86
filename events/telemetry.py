"""Each long-running process's Prometheus endpoint, and the stream framework's own metrics.

Every process (the relay, each ``manage.py consume <name>``, the Celery worker) serves its
metrics on ``METRICS_PORT`` (``serve``); the web process serves them at ``/metrics``. The
metrics are ``prometheus_client``'s, defined once in the module of the room that owns them
(this one for the consumer loop, the relay and dead letters; ``fraud.scorer.metrics``,
``features.processor``, ``ml.metrics``, ``config.celery``).

A process that forks workers (Celery's prefork pool, several web workers) runs with
``PROMETHEUS_MULTIPROC_DIR`` set before it starts (``METRICS_MULTIPROCESS_DIR``): each child
then writes its samples to files there and ``serve`` answers with their sum
(``prometheus_client.multiprocess``). Without it a process serves its own registry, process
figures (CPU, RSS, open files) included.

The consumer loop's figures, labelled by consumer:

- ``stream_consumer_records_total``: records polled and handed to the step (the rate is the
  consumer's events/s);
- ``stream_consumer_batch_records``, ``stream_consumer_batch_seconds``: each batch's size and
  the time the step took to handle it;
- ``stream_consumer_stage_seconds{stage}``: the step's own stages (``events.batching.BatchStats``);
- ``stream_consumer_lag_records{topic,partition}``: the records of each partition it owns still
  to read (the log's end minus its position), refreshed every ``LAG_EVERY_S`` while it serves;
- ``stream_dead_letters_total{kind}``: records it rejected to its dead-letter topic.

Pure Python: no Django.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)

if TYPE_CHECKING:
    from events.bus import Bus, Consumer, LogEnds, Message

log = logging.getLogger(__name__)

# How often a serving consumer reads its topics' ends to tell its lag: one request per
# interval, shorter than a scrape's 15 s.
LAG_EVERY_S = 5.0
LAG_TIMEOUT_S = 1.0

# Batch sizes, in records: the scorer's and the processor's batches run up to 200-500.
RECORD_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 200, 500, 1000, 2000)
# Stage and batch durations: from a tenth of a millisecond (a decode) to seconds (a stall).
SECONDS_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
)  # fmt: skip

RECORDS = Counter(
    "stream_consumer_records", "Records polled and handed to the consumer's step.", ["consumer"]
)
BATCH_RECORDS = Histogram(
    "stream_consumer_batch_records",
    "Records in each batch the consumer handled.",
    ["consumer"],
    buckets=RECORD_BUCKETS,
)
BATCH_SECONDS = Histogram(
    "stream_consumer_batch_seconds",
    "Time the consumer's step took to handle a batch.",
    ["consumer"],
    buckets=SECONDS_BUCKETS,
)
STAGE_SECONDS = Histogram(
    "stream_consumer_stage_seconds",
    "Time of each stage of the consumer's batches.",
    ["consumer", "stage"],
    buckets=SECONDS_BUCKETS,
)
LAG = Gauge(
    "stream_consumer_lag_records",
    "Records of a partition the consumer owns that it has not read yet.",
    ["consumer", "topic", "partition"],
    multiprocess_mode="mostrecent",
)
DEAD_LETTERS = Counter(
    "stream_dead_letters",
    "Records the consumer rejected to its dead-letter topic, by why.",
    ["consumer", "kind"],
)
RELAY_PUBLISHED = Counter(
    "relay_published_events", "Outbox events the relay published and marked published."
)
RELAY_FAILURES = Counter(
    "relay_failures", "Relay cycles that failed: the bus was away or refused a record."
)
RELAY_CYCLE_SECONDS = Histogram(
    "relay_cycle_seconds",
    "Time of a relay cycle that published events (read, publish, acknowledgement, mark).",
    buckets=SECONDS_BUCKETS,
)

_serving = False


def serve(port: int, *, host: str = "127.0.0.1", multiprocess_dir: str = "") -> bool:
    """Serve this process's metrics on ``host:port`` from a daemon thread (nothing when
    ``port`` is 0); return whether it serves. With ``multiprocess_dir``, serve the sum of
    every process writing there instead of this one's registry."""
    global _serving
    if not port or _serving:
        return _serving
    start_http_server(port, addr=host, registry=process_registry(multiprocess_dir))
    _serving = True
    log.info("metrics on http://%s:%d/metrics", host, port)
    return True


def serving() -> bool:
    """Return whether this process serves its metrics (the lag is read only then)."""
    return _serving


def serve_from_settings() -> bool:
    """``serve`` on the settings' ``METRICS_PORT`` and ``METRICS_HOST``."""
    from django.conf import settings

    return serve(
        settings.METRICS_PORT,
        host=settings.METRICS_HOST,
        multiprocess_dir=settings.METRICS_MULTIPROCESS_DIR,
    )


class StageObserver:
    """Feed a step's stage timings (``events.batching.BatchStats.measured``) to
    ``stream_consumer_stage_seconds``, one labelled child per stage kept at hand."""

    def __init__(self, consumer: str):
        self.consumer = consumer
        self._children: dict[str, Histogram] = {}

    def observe(self, stage: str, ms: float) -> None:
        child = self._children.get(stage)
        if child is None:
            child = self._children[stage] = STAGE_SECONDS.labels(self.consumer, stage)
        child.observe(ms / 1000)


class ConsumerMetrics:
    """The loop's figures for one consumer (``events.streaming.consume``): its batches as they
    are handled, and, while the process serves its metrics, its lag."""

    def __init__(self, name: str, bus: Bus, topics: Sequence[str], group: str):
        self.name = name
        self.bus = bus
        self.topics = tuple(topics)
        self.group = group
        self.records = RECORDS.labels(name)
        self.batch_records = BATCH_RECORDS.labels(name)
        self.batch_seconds = BATCH_SECONDS.labels(name)
        # (topic, partition) -> the offset of the next record to read.
        self.positions: dict[tuple[str, int], int] = {}
        self._ends: LogEnds | None = None
        self._lag_at = 0.0
        self._labelled: set[tuple[str, int]] = set()
        # Partitions whose group offset was asked (``maybe_lag``).
        self._asked: set[tuple[str, int]] = set()

    def batch(self, messages: Sequence[Message], seconds: float) -> None:
        """Count a batch the step handled in ``seconds``."""
        self.records.inc(len(messages))
        self.batch_records.observe(len(messages))
        self.batch_seconds.observe(seconds)
        positions = self.positions
        for message in messages:
            positions[(message.topic, message.partition)] = message.offset + 1

    def maybe_lag(self, consumer: Consumer) -> None:
        """Every ``LAG_EVERY_S`` while the process serves its metrics: set the lag of each
        partition ``consumer`` owns. A partition it has read nothing of yet counts from its
        group's committed offset. A log that does not answer leaves the last figures."""
        if not _serving or time.monotonic() < self._lag_at:
            return
        self._lag_at = time.monotonic() + LAG_EVERY_S
        try:
            if self._ends is None:
                self._ends = self.bus.log_ends(self.topics)
            ends = self._ends.read(timeout_s=LAG_TIMEOUT_S)
            owned = consumer.assignment()
            # Asked once per partition: an idle one with nothing committed would otherwise
            # cost a request to the group's coordinator every turn (a client each, on Kafka).
            known = self.positions.keys() | self._asked
            unknown = {topic for topic, partition in owned if (topic, partition) not in known}
            for topic in unknown:
                for partition, offset in self.bus.committed(self.group, topic).items():
                    self.positions.setdefault((topic, partition), offset)
                self._asked |= {slot for slot in owned if slot[0] == topic}
        except Exception as exc:  # the lag is a figure: never a reason to stop consuming
            log.debug("%s: lag not read: %s", self.name, exc)
            return
        for slot in self._labelled - owned:
            LAG.remove(self.name, slot[0], str(slot[1]))
        self._labelled = set()
        for slot in owned:
            end = ends.get(slot)
            if end is None:
                continue
            position = self.positions.get(slot, 0)
            LAG.labels(self.name, slot[0], str(slot[1])).set(max(end - position, 0))
            self._labelled.add(slot)

    def close(self) -> None:
        if self._ends is not None:
            self._ends.close()
            self._ends = None


def process_registry(multiprocess_dir: str = "") -> CollectorRegistry:
    """Return the registry of this process's own metrics: with ``multiprocess_dir`` (a forking
    server's ``PROMETHEUS_MULTIPROC_DIR``), the sum over every process writing there; else
    this one's.

    The directory is the operator's, read by the settings at start, never the environment as
    it stands: Feast sets ``PROMETHEUS_MULTIPROC_DIR`` to a directory of its own when it is
    imported, which holds this process's samples at best."""
    if not multiprocess_dir:
        return REGISTRY
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=multiprocess_dir)
    return registry


def exposition(*registries: CollectorRegistry) -> bytes:
    """Return ``registries`` in Prometheus' text format, one after the other (their names must
    not repeat)."""
    return b"".join(generate_latest(r) for r in registries)
