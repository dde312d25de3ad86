"""Replay mode: every good row of an external file reaches the stream; bad rows are reported."""

import uuid
from datetime import timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.management import CommandError, call_command

from events.backends.embedded import EmbeddedBus
from events.backends.kafka import KafkaBus
from events.contracts import TOPICS, decode, topic_name
from events.payments_file import file_salt, read_rows
from simulator.config import LabelConfig
from simulator.load import topics_ensure
from simulator.models import GroundTruth, SimulationRun
from simulator.replay import (
    ID_NAMESPACE,
    RowEvents,
    parse_row,
    replay_publish,
)
from simulator.report import Stats
from tests.events.bus_helpers import drain
from tests.simulator.test_load import FakeClock

# Replays files: fails alone if it grows (tests/memory_ceiling.py).
pytestmark = pytest.mark.memory_ceiling(2)

HEADER = "timestamp,rider,card,driver,amount,pickup_lat,pickup_lng,dropoff_lat,dropoff_lng,label"
GOOD = [
    "2026-03-01T08:00:00Z,r1,c1,d1,12.50,52.33,4.845,52.39,4.935,0",
    "2026-03-01T08:00:30Z,r2,c2,,7.00,52.35,4.90,,,1",
    "1772352060,r1,c1,d2,30.10,52.31,4.81,52.41,4.97,1",
    "2026-03-01 08:02:00,r3,c3,,9.99,,,,,",
    "2026-03-01T08:02:30+00:00,r4,c9,d1,15,52.36,4.85,52.37,4.86,false",
]
BAD = [
    ("not-a-time,r5,c5,,10,,,,,0", "timestamp 'not-a-time' is neither ISO 8601 nor Unix seconds"),
    ("2026-03-01T08:03:00Z,r6,c6,,10,48.85,2.35,,,0", "is outside the city"),
    ("2026-03-01T08:03:10Z,,c7,,10,,,,,0", "rider and card are required"),
    ("2026-03-01T08:03:20Z,r8,c8,,ten,,,,,0", "amount 'ten' is not a number"),
    ("2026-03-01T08:03:30Z,r9,c9,,10,,,,,maybe", "label 'maybe' is not one of"),
]


@pytest.fixture
def payments_csv(tmp_path):
    lines = [HEADER, GOOD[0], GOOD[1], BAD[0][0], GOOD[2], BAD[1][0], BAD[2][0], GOOD[3]]
    lines += [BAD[3][0], BAD[4][0], GOOD[4]]
    path = tmp_path / "payments.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def replay(path, bus, city, *, speedup=0.0, prefix="", truth=None) -> Stats:
    stats = Stats(mode="replay")
    row_events = RowEvents(
        salt=file_salt(path), labels=LabelConfig(fraction=1.0, false_rate=0.0), seed=1
    )
    replay_publish(
        read_rows(path), city=city, bus=bus, stats=stats, row_events=row_events,
        speedup=speedup, topic_prefix=prefix, on_truth=truth.extend if truth is not None else None,
    )  # fmt: skip
    return stats


def test_replay_sends_every_good_row_and_reports_bad_ones_by_line(payments_csv, tmp_path, city):
    bus = EmbeddedBus(tmp_path / "log.sqlite3")
    truth: list[dict] = []

    stats = replay(payments_csv, bus, city, truth=truth)

    assert stats.errors == 5
    for sample, (line, (_, message)) in zip(
        stats.error_samples, zip((4, 6, 7, 9, 10), BAD, strict=True), strict=True
    ):
        assert sample.startswith(f"line {line}: ")
        assert message in sample
    assert stats.events["PaymentAuthorized"] == 5
    assert stats.events["TripRequested"] == 3
    assert stats.events["TripCompleted"] == 3
    assert stats.events["PaymentCaptured"] == 3
    assert stats.events["ChargebackFiled"] == 2
    # Each card's first row is its first sighting: c1, c2, c3, c9 (r9's c9 row is bad).
    assert stats.events["CardAdded"] == 4
    consumer = bus.consumer(group="g", topics=["payments.authorized.v1"])
    payments = [decode(m.topic, m.value) for m in drain(consumer, 5)]
    consumer.close()
    assert sorted((p.rider_id, p.card_id, p.amount_cents) for p in payments) == [
        ("r1", "c1", 1250), ("r1", "c1", 3010), ("r2", "c2", 700), ("r3", "c3", 999),
        ("r4", "c9", 1500),
    ]  # fmt: skip
    assert {p.pickup_zone for p in payments if p.rider_id == "r3"} == {""}
    # The label column is ground truth: one row per payment and per chargeback.
    fraud = sorted((row["topic"], row["rider_id"]) for row in truth if row["is_fraud"])
    assert fraud == [
        ("labels.chargeback_filed.v1", "r1"), ("labels.chargeback_filed.v1", "r2"),
        ("payments.authorized.v1", "r1"), ("payments.authorized.v1", "r2"),
    ]  # fmt: skip
    # An empty label is legitimate: every payment has its row, and each chargeback.
    assert len(truth) == 5 + 2


def test_replaying_the_same_file_again_gives_the_same_event_ids(payments_csv, tmp_path, city):
    one, two = EmbeddedBus(tmp_path / "a.sqlite3"), EmbeddedBus(tmp_path / "b.sqlite3")
    replay(payments_csv, one, city)
    replay(payments_csv, two, city)

    def ids(bus):
        consumer = bus.consumer(group="g", topics=list(TOPICS))
        found = sorted(str(decode(m.topic, m.value).event_id) for m in drain(consumer, 22))
        consumer.close()
        return found

    assert ids(one) == ids(two)
    assert len(ids(one)) == 22


def test_parquet_input_replays_like_csv(tmp_path, city):
    table = pa.table(
        {
            "timestamp": pa.array(
                ["2026-03-01T08:00:00Z", "2026-03-01T08:01:00Z", "bad"], pa.string()
            ),
            "rider": ["r1", "r2", "r3"],
            "card": ["c1", "c2", "c3"],
            "amount": [12.5, 8.0, 1.0],
            "label": [1, 0, 0],
        }
    )
    path = tmp_path / "payments.parquet"
    pq.write_table(table, path)
    bus = EmbeddedBus(tmp_path / "log.sqlite3")

    stats = replay(path, bus, city)

    assert (stats.events["PaymentAuthorized"], stats.events["ChargebackFiled"]) == (2, 1)
    assert stats.error_samples == ["line 3: timestamp 'bad' is neither ISO 8601 nor Unix seconds"]


def test_speedup_paces_the_file(tmp_path, city, monkeypatch):
    path = tmp_path / "paced.csv"
    path.write_text(
        "timestamp,rider,card,amount\n"
        "2026-03-01T08:00:00Z,r1,c1,10\n"
        "2026-03-01T08:00:02Z,r1,c1,10\n"
        "2026-03-01T08:00:04Z,r1,c1,10\n"
    )
    bus = EmbeddedBus(tmp_path / "log.sqlite3")

    clock = FakeClock()
    monkeypatch.setattr("simulator.replay.time", clock)

    stats = replay(path, bus, city, speedup=10)

    assert stats.events["PaymentAuthorized"] == 3
    # 4 s of file time at 10x: the rows were held back 0.4 s in all.
    assert clock.now == pytest.approx(0.4, abs=1e-3)


def test_a_file_without_a_required_column_is_refused(tmp_path):
    path = tmp_path / "no-amount.csv"
    path.write_text("timestamp,rider,card\n2026-03-01T08:00:00Z,r1,c1\n")

    with pytest.raises(ValueError, match="missing column"):
        list(read_rows(path))


@pytest.mark.kafka
def test_replay_reaches_real_kafka_with_every_row(payments_csv, kafka_bootstrap, city):
    bus = KafkaBus(bootstrap_servers=kafka_bootstrap, timeout_s=10)
    prefix = f"test-{uuid.uuid4().hex[:10]}"
    topics_ensure(bus, prefix=prefix, partitions=2)

    stats = replay(payments_csv, bus, city, prefix=prefix)

    assert stats.errors == 5
    topic = topic_name(prefix, "payments.authorized.v1")
    consumer = bus.consumer(group=f"test-{uuid.uuid4().hex[:8]}", topics=[topic])
    received = [decode(m.topic, m.value) for m in drain(consumer, 5, timeout=60)]
    consumer.close()
    salt = file_salt(payments_csv)
    good_lines = (2, 3, 5, 8, 11)
    assert sorted(str(p.event_id) for p in received) == sorted(
        str(uuid.uuid5(ID_NAMESPACE, f"{salt}:{line}:payments.authorized.v1"))
        for line in good_lines
    )
    assert sorted(p.rider_id for p in received) == ["r1", "r1", "r2", "r3", "r4"]
    # 25 events of the rows (the three with a driver ask for their capture verdict), and the
    # four cards' first sightings.
    assert sum(sum(bus.end_offsets(topic_name(prefix, t)).values()) for t in TOPICS) == 29


@pytest.mark.django_db
def test_the_replay_command_fails_over_the_error_rate_and_records_truth(
    payments_csv, tmp_path, settings, capsys
):
    settings.EVENT_BUS = "embedded"
    settings.EVENT_LOG_PATH = tmp_path / "log.sqlite3"

    with pytest.raises(CommandError, match="over --max-error-rate"):
        call_command("simulate", "replay", str(payments_csv), "--speedup", "0")

    out = capsys.readouterr().out
    assert "line 4: timestamp 'not-a-time'" in out
    run = SimulationRun.objects.get()
    assert (run.mode, run.status, run.errors, run.events_published) == ("replay", "finished", 5, 29)
    assert GroundTruth.objects.filter(run=run).count() == 7
    assert GroundTruth.objects.filter(run=run, is_fraud=True).count() == 4

    call_command(
        "simulate", "replay", str(payments_csv), "--speedup", "0", "--max-error-rate", "0.5"
    )
    # Same file, same event ids: the ground truth is not duplicated.
    assert GroundTruth.objects.count() == 7


def _planner(city):
    """Return a function giving a CSV line's planned events by topic: (time, event)."""
    row_events = RowEvents(salt="salt", labels=LabelConfig(fraction=1.0, false_rate=0.0), seed=1)
    header = HEADER.split(",")

    def planned(line: str) -> dict:
        events = row_events.events(
            parse_row(2, dict(zip(header, line.split(","), strict=True)), city)
        )
        return {item.event.topic: (at, item.event) for at, item in events}

    return planned


def test_replayed_payments_carry_the_distance_and_chargebacks_the_trip_driver_and_zone(city):
    plan = _planner(city)

    def planned(line: str) -> dict:
        return {topic: event for topic, (_, event) in plan(line).items()}

    routed = planned(GOOD[2])
    authorized, chargeback = routed["payments.authorized.v1"], routed["labels.chargeback_filed.v1"]
    assert (authorized.pickup_zone, authorized.distance_km) == ("Z-0-0", 15.546)
    assert routed["trips.requested.v1"].distance_km == 15.546
    assert routed["trips.assigned.v1"].driver_id == "d2"
    assert (chargeback.trip_id, chargeback.driver_id, chargeback.pickup_zone) == (
        authorized.trip_id,
        "d2",
        "Z-0-0",
    )
    # Without a dropoff there is no trip to measure or drive: the zone alone is known.
    unrouted = planned(GOOD[1])
    authorized, chargeback = (
        unrouted["payments.authorized.v1"],
        unrouted["labels.chargeback_filed.v1"],
    )
    assert (authorized.pickup_zone, authorized.distance_km) == ("Z-2-3", None)
    assert (chargeback.trip_id, chargeback.driver_id, chargeback.pickup_zone) == (
        authorized.trip_id,
        None,
        "Z-2-3",
    )


def test_a_driver_alone_attributes_the_payment_and_a_card_is_sighted_once(city):
    planned = _planner(city)
    first = planned("2026-03-01T08:00:00Z,r7,c7,d7,20,,,,,1")
    at, added = first["cards.added.v1"]
    paid_at, payment = first["payments.authorized.v1"]
    assert (added.card_id, added.rider_id, at) == ("c7", "r7", paid_at)
    # No coordinates: no trip request, but the driver drives it (0 km) and is charged back.
    assert "trips.requested.v1" not in first
    done_at, completed = first["trips.completed.v1"]
    assert (completed.driver_id, completed.distance_km, completed.fare_cents) == ("d7", 0.0, 2000)
    assert done_at - paid_at == timedelta(minutes=7)
    assert first["labels.chargeback_filed.v1"][1].driver_id == "d7"
    assert first["payments.captured.v1"][1].payment_id == payment.payment_id
    # The card's second row: no second sighting.
    assert "cards.added.v1" not in planned("2026-03-01T09:00:00Z,r7,c7,d7,20,,,,,0")
