"""The consumer loop's metrics (``events.telemetry``) on the embedded bus: records, batches,
stages and dead letters counted per consumer, the lag per partition it owns, and a process's
endpoint serving them."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass

import pytest

from devservices.base import free_port
from events import telemetry
from events.batching import BatchStats
from events.bus import Record
from events.deadletters import DeadLetterer
from events.streaming import BatchStep, consume, offsets_commit
from tests.scrape import sample, samples, scrape

TOPIC = "t.metered"


@dataclass
class Stats(BatchStats):
    events: int = 0


class Metered(BatchStep):
    """A step that reads ``limit`` records in batches of two, timing one stage a batch and
    rejecting the records whose value is ``poison``."""

    log_every_s = 3600.0
    poll_timeout_s = 0.05
    max_records = 2

    def __init__(self, bus, *, limit: int):
        self.name = f"metered-{uuid.uuid4().hex[:8]}"
        self.bus = bus
        self.group = f"{self.name}-group"
        self.topics = (TOPIC,)
        self.stats = Stats()
        self.dead_letters = DeadLetterer(self.name, f"deadletter.{self.name}")
        self.limit = limit

    def submit(self, messages):
        self.stats.measured("work", 3.0)
        for message in messages:
            if message.value == b"poison":
                self.dead_letter(message, "decode", "not an event")
        self.stats.events += len(messages)
        offsets_commit(self, messages)

    def tick(self):
        # Stop once the step read its share: the rest of the topic is its lag.
        if self.stats.events >= self.limit:
            self.stop.set()


def _figure(name: str, **labels: str) -> float | None:
    from prometheus_client import REGISTRY, generate_latest

    return sample(generate_latest(REGISTRY).decode(), name, **labels)


@pytest.fixture
def published(embedded_bus):
    embedded_bus.ensure_topics([TOPIC], partitions=1)
    producer = embedded_bus.producer()
    values = [b"ok"] * 3 + [b"poison"] + [b"ok"] * 6
    producer.publish([Record(TOPIC, v, key="k") for v in values])
    producer.close()
    return embedded_bus


def test_the_loop_counts_records_batches_stages_dead_letters_and_the_lag(published, monkeypatch):
    monkeypatch.setattr(telemetry, "_serving", True)
    monkeypatch.setattr(telemetry, "LAG_EVERY_S", 0.0)
    step = Metered(published, limit=4)
    step.stop = threading.Event()

    consume(step, published, stop=step.stop)

    name = step.name
    assert _figure("stream_consumer_records_total", consumer=name) == 4
    assert _figure("stream_consumer_batch_records_count", consumer=name) == 2
    assert _figure("stream_consumer_batch_records_sum", consumer=name) == 4
    assert _figure("stream_consumer_stage_seconds_count", consumer=name, stage="work") == 2
    assert _figure("stream_consumer_stage_seconds_sum", consumer=name, stage="work") == (
        pytest.approx(0.006)
    )
    assert _figure("stream_dead_letters_total", consumer=name, kind="decode") == 1
    # Ten records, four read: six to go on its one partition.
    assert _figure("stream_consumer_lag_records", consumer=name, topic=TOPIC, partition="0") == 6


def test_the_lag_is_not_read_while_the_process_serves_no_metrics(published):
    step = Metered(published, limit=4)
    step.stop = threading.Event()

    consume(step, published, stop=step.stop)

    assert (
        _figure("stream_consumer_lag_records", consumer=step.name, topic=TOPIC, partition="0")
        is None
    )


def test_a_process_serves_its_metrics_on_its_port(monkeypatch):
    monkeypatch.setattr(telemetry, "_serving", False)
    port = free_port()

    assert telemetry.serve(port) is True
    assert telemetry.serve(port) is True  # once per process

    figures = samples(scrape(f"http://127.0.0.1:{port}/metrics"))
    assert figures[("process_resident_memory_bytes", ())] > 0
