"""Load mode: the requested count reaches the stream, at the requested rate."""

import itertools
import uuid
from datetime import UTC, datetime

import pytest
from django.core.management import call_command

from events.backends.embedded import EmbeddedBus
from events.backends.kafka import KafkaBus
from events.contracts import TOPICS, decode, topic_name
from simulator.config import SimConfig
from simulator.engine import Simulation
from simulator.load import load_publish, topics_ensure
from simulator.models import GroundTruth, SimulationRun
from simulator.report import Stats
from tests.events.bus_helpers import drain


def events(city, seed: int = 1):
    return Simulation(SimConfig(seed=seed, riders=200, drivers=30), city).events()


def truth_count(stats: Stats) -> int:
    """Ground-truth rows of a run: every payment, every other fraud event, every chargeback."""
    payments = stats.events["PaymentAuthorized"] + stats.events["PaymentDeclined"]
    other_fraud = sum(stats.fraud_events.values()) - sum(stats.fraud_payments.values())
    return payments + other_fraud + stats.events["ChargebackFiled"]


def test_load_publishes_the_requested_count_to_the_embedded_log(tmp_path, city):
    bus = EmbeddedBus(tmp_path / "log.sqlite3")
    truth: list[dict] = []
    stats = Stats(mode="load", requested_rate=5000)

    load_publish(events(city), bus=bus, rate=5000, count=700, stats=stats, on_truth=truth.extend)

    assert stats.published == 700
    assert stats.errors == 0
    assert sum(sum(bus.end_offsets(t).values()) for t in TOPICS) == 700
    assert len(truth) == truth_count(stats)
    assert len({row["event_id"] for row in truth}) == len(truth)


class FakeClock:
    """Stands in for the ``time`` module of the pacing loop: only sleeping moves it."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        # A real clock has moved by at least a microsecond when a sleep returns.
        self.now += max(seconds, 1e-6)


def test_load_follows_the_open_model_schedule_and_stamps_due_times(tmp_path, city, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr("simulator.load.time", clock)
    bus = EmbeddedBus(tmp_path / "log.sqlite3")
    stats = Stats(mode="load", requested_rate=400)
    before = datetime.now(UTC)

    load_publish(events(city), bus=bus, rate=400, count=400, stats=stats, topic_prefix="ns")

    assert stats.published == 400
    # With instant publishes, the loop waits exactly until the last event is due: 399/400 s.
    assert clock.now == pytest.approx(399 / 400, abs=1e-3)
    consumer = bus.consumer(group="g", topics=[topic_name("ns", t) for t in TOPICS])
    stamps = sorted(decode(m.topic, m.value).occurred_at for m in drain(consumer, 400))
    consumer.close()
    assert len(stamps) == 400
    assert before <= stamps[0]
    # Each event carries the wall-clock time it was due: 2.5 ms apart at 400/s.
    gaps = {(b - a).total_seconds() for a, b in itertools.pairwise(stamps)}
    assert all(g == pytest.approx(0.0025, abs=2e-6) for g in gaps)


def test_load_stops_when_asked(tmp_path, city, monkeypatch):
    # The fake clock: what is due depends on the schedule alone, not on this machine's speed.
    monkeypatch.setattr("simulator.load.time", FakeClock())
    bus = EmbeddedBus(tmp_path / "log.sqlite3")
    stats = Stats(mode="load", requested_rate=1000)

    load_publish(
        events(city), bus=bus, rate=1000, duration_s=60, stats=stats,
        should_stop=lambda: stats.published >= 250,
    )  # fmt: skip

    # Asked to stop once 250 were out: it stops with the batch in flight (one event at a time
    # when the loop keeps up), long before the 60,000 events its duration would allow.
    assert stats.stopped is True
    assert stats.published == 250
    assert sum(sum(bus.end_offsets(t).values()) for t in TOPICS) == stats.published


def test_a_load_run_is_bounded(tmp_path, city):
    with pytest.raises(ValueError, match="bounded"):
        load_publish(events(city), bus=EmbeddedBus(tmp_path / "l"), rate=10, stats=Stats("load"))


@pytest.mark.django_db
def test_the_load_command_publishes_records_truth_and_the_run(tmp_path, settings, capsys):
    settings.EVENT_BUS = "embedded"
    settings.EVENT_LOG_PATH = tmp_path / "log.sqlite3"

    call_command("simulate", "load", "--count", "300", "--rate", "3000", "--riders", "100")

    bus = EmbeddedBus(tmp_path / "log.sqlite3")
    assert sum(sum(bus.end_offsets(t).values()) for t in TOPICS) == 300
    run = SimulationRun.objects.get()
    assert (run.mode, run.status, run.events_published, run.errors) == ("load", "finished", 300, 0)
    stats = Stats(mode="load")
    stats.events.update(run.counters["events"])
    stats.fraud_events.update(run.counters["fraud_events"])
    stats.fraud_payments.update(run.counters["fraud_payments"])
    assert GroundTruth.objects.filter(run=run).count() == truth_count(stats)
    assert "achieved" in capsys.readouterr().out


@pytest.mark.kafka
def test_load_events_arrive_on_real_kafka(kafka_bootstrap, city):
    bus = KafkaBus(bootstrap_servers=kafka_bootstrap, timeout_s=10)
    prefix = f"test-{uuid.uuid4().hex[:10]}"
    topics_ensure(bus, prefix=prefix, partitions=1)
    stats = Stats(mode="load", requested_rate=2000)

    load_publish(
        events(city, seed=3), bus=bus, rate=2000, count=500, stats=stats, topic_prefix=prefix
    )

    assert (stats.published, stats.errors) == (500, 0)
    consumer = bus.consumer(
        group=f"test-{uuid.uuid4().hex[:8]}", topics=[topic_name(prefix, t) for t in TOPICS]
    )
    received = drain(consumer, 500, timeout=60)
    consumer.close()
    assert len(received) == 500
    by_type = {}
    for message in received:
        event = decode(message.topic, message.value)
        by_type[type(event).__name__] = by_type.get(type(event).__name__, 0) + 1
        assert message.key == event.key()
    assert by_type == dict(stats.events)
