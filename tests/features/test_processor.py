"""The stream processor computes what the declarations say: its deduplicated offline rows and its
online values equal a brute-force reference, however the stream is split into micro-batches,
with ties, out-of-order, duplicated and late events; the embedded and Redis engines agree; poison
and late events go to the dead-letter topic and change nothing else."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from events.backends.embedded import EmbeddedBus
from events.bus import Message, Record
from events.contracts import (
    CardAdded,
    ChargebackFiled,
    DeviceChanged,
    Event,
    PaymentAuthorized,
    PaymentDeclined,
    Place,
    ReviewDecided,
    RiderContext,
    RiderSignedUp,
    TripAssigned,
    TripCancelled,
    TripCompleted,
    TripRequested,
)
from features.definitions import topics
from features.processor import (
    OFFLINE_MAX_BATCHES,
    ProcessorSettings,
    StreamProcessor,
    state_from_config,
)
from features.state import RedisState, SqliteState
from features.store import FeatureConfig
from features.tables import EVENT_SCHEMA
from features.windows import to_us
from simulator.city import city_from_file
from simulator.engine import Simulation
from tests.events.factories import poison_values
from tests.features.simulated import CONFIG
from tests.features.streams import (
    applied_config,
    fresh_copy,
    messages_for,
    offline_rows,
    online_values,
    redis_project,
    reference,
)
from tests.polling import wait_for

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
LATENESS_US = 60_000_000
KINDS = (
    "payment",
    "decline",
    "card_added",
    "trip_requested",
    "trip_assigned",
    "trip_completed",
    "cancel_by_rider",
    "cancel_by_driver",
    "chargeback",
    "review",
    "signup",
    "device_change",
)
# Seconds after the latest event so far: ties (0), window edges (600, 3600, 86400 and a second
# either side), out of order within the lateness (-1 .. -60) and beyond it (-61, -600).
STEPS = (0, 0, 1, 59, 60, 61, 599, 600, 601, 3599, 3600, 3601, 86400, -1, -30, -60, -61, -600)


def event(kind: str, *, n: int, at: datetime, card: int, rider: int, other: int, amount: int):
    """Return event number ``n`` of ``kind`` at ``at``; ``other`` picks the driver, the zone,
    the device and the analyst's decision. Event ids order as ``n`` does."""
    ids = {"event_id": uuid.UUID(int=n + 1), "occurred_at": at}
    card_id, rider_id = f"card-{card}", f"rider-{rider}"
    driver_id, zone = f"driver-{other}", f"Z-{other}"
    context = RiderContext(device_id=f"device-{other}", ip="127.0.0.1")
    payment = {
        "payment_id": f"payment-{n}",
        "trip_id": f"trip-{n}",
        "rider_id": rider_id,
        "card_id": card_id,
        "amount_cents": 100 * amount,
        "currency": "EUR",
    }
    trip = {"trip_id": f"trip-{n}", "rider_id": rider_id}
    if kind == "payment":
        return PaymentAuthorized(
            **ids, **payment, card_fingerprint="fp", pickup_zone=zone, context=context
        )
    if kind == "decline":
        return PaymentDeclined(
            **ids, **payment, card_fingerprint="fp", decline_code="05", context=context
        )
    if kind == "card_added":
        return CardAdded(
            **ids,
            card_id=card_id,
            rider_id=rider_id,
            brand="visa",
            last4="4242",
            exp_month=1,
            exp_year=2030,
            fingerprint="fp",
            context=context,
        )
    if kind == "trip_requested":
        place = Place(lat=52.37, lng=4.89, zone=zone)
        return TripRequested(
            **ids,
            **trip,
            card_id=card_id,
            pickup=place,
            dropoff=place,
            distance_km=float(amount),
            fare_cents=300 * amount,
            currency="EUR",
            context=context,
        )
    if kind == "trip_assigned":
        return TripAssigned(**ids, **trip, driver_id=driver_id)
    if kind == "trip_completed":
        return TripCompleted(
            **ids, **trip, driver_id=driver_id, fare_cents=300 * amount, distance_km=1.0
        )
    if kind in {"cancel_by_rider", "cancel_by_driver"}:
        return TripCancelled(
            **ids,
            **trip,
            driver_id=driver_id,
            cancelled_by=kind.removeprefix("cancel_by_"),
            fee_cents=0,
            stage="assigned",
        )
    if kind == "chargeback":
        return ChargebackFiled(
            **ids,
            chargeback_id=f"chargeback-{n}",
            payment_id=f"payment-{n}",
            card_id=card_id,
            rider_id=rider_id,
            amount_cents=100 * amount,
            reason_code="10.4",
            trip_id=f"trip-{n}",
            driver_id=driver_id,
            pickup_zone=zone,
        )
    if kind == "review":
        return ReviewDecided(
            **ids,
            review_id=f"review-{n}",
            payment_id=f"payment-{n}",
            card_id=card_id,
            rider_id=rider_id,
            driver_id=driver_id,
            pickup_zone=zone,
            decision="confirmed_fraud" if other == 0 else "legitimate",
            analyst="analyst",
        )
    if kind == "signup":
        return RiderSignedUp(**ids, rider_id=rider_id, context=context)
    assert kind == "device_change"
    return DeviceChanged(**ids, rider_id=rider_id, context=context)


def stream_of(specs, redeliveries) -> list[Event]:
    """Return the events of ``specs`` (kind, card, rider, other, step, amount), each ``step``
    seconds after the latest so far, with the events named by ``redeliveries`` (index, later
    position) delivered a second time."""
    events, latest = [], START
    for n, (kind, card, rider, other, step, amount) in enumerate(specs):
        at = latest + timedelta(seconds=step)
        latest = max(latest, at)
        events.append(event(kind, n=n, at=at, card=card, rider=rider, other=other, amount=amount))
    delivered = list(events)
    for index, position in redeliveries:
        if index < len(events):
            delivered.insert(max(position, index + 1), events[index])
    return delivered


def run_batches(processor: StreamProcessor, messages: list[Message], sizes: list[int]) -> None:
    """Feed ``messages`` to ``processor`` in batches of ``sizes`` (cycled)."""
    position, turn = 0, 0
    while position < len(messages):
        size = sizes[turn % len(sizes)]
        processor.process_batch(messages[position : position + size])
        position, turn = position + size, turn + 1


def processor_for(config: FeatureConfig, state=None) -> StreamProcessor:
    return StreamProcessor(
        bus=EmbeddedBus(config.data_dir / "bus.sqlite3"),
        config=config,
        state=state or SqliteState(config.state_path, lateness_us=config.allowed_lateness_us),
        namespace="t",
    )


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> FeatureConfig:
    """An applied project whose empty SQLite online store each run copies."""
    return applied_config(tmp_path_factory.mktemp("template"))


SPEC = st.tuples(
    st.sampled_from(KINDS),
    st.integers(0, 2),
    st.integers(0, 1),
    st.integers(0, 1),
    st.sampled_from(STEPS),
    st.integers(1, 4),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    specs=st.lists(SPEC, min_size=1, max_size=30),
    redeliveries=st.lists(st.tuples(st.integers(0, 29), st.integers(0, 40)), max_size=4),
    sizes=st.lists(st.integers(1, 12), min_size=1, max_size=4),
)
@example(
    # A tie, a late event beyond the lateness, a redelivery, an out-of-order one within it.
    specs=[
        ("payment", 0, 0, 0, 0, 1),
        ("payment", 0, 0, 1, 0, 2),
        ("card_added", 0, 0, 0, 600, 1),
        ("payment", 0, 0, 0, -61, 3),
        ("payment", 0, 0, 0, -30, 4),
        ("chargeback", 1, 1, 1, 3600, 1),
    ],
    redeliveries=[(1, 5)],
    sizes=[2],
)
def test_incremental_engine_equals_brute_force(
    template, tmp_path_factory, specs, redeliveries, sizes
):
    messages = messages_for(stream_of(specs, redeliveries), namespace="t", partitions=2)
    expected = reference(messages, lateness_us=LATENESS_US)

    for split in (sizes, [len(messages)]):
        config = fresh_copy(template, tmp_path_factory.mktemp("run"))
        run_batches(processor_for(config), messages, split)

        assert offline_rows(config) == expected.rows
        assert online_values(config, expected.online) == expected.online


def test_redis_state_gives_the_brute_force_values(template, redis_client, tmp_path):
    specs = [
        ("card_added", 0, 0, 0, 0, 1),
        ("payment", 0, 0, 0, 0, 2),
        ("payment", 0, 0, 1, 0, 3),
        ("payment", 0, 1, 1, 599, 1),
        ("decline", 0, 1, 0, 1, 1),
        ("payment", 0, 1, 0, -20, 4),
        ("payment", 0, 1, 0, -61, 4),
        ("trip_completed", 1, 0, 1, 3600, 2),
        ("trip_assigned", 1, 0, 1, 0, 2),
        ("cancel_by_driver", 1, 0, 1, 60, 2),
        ("chargeback", 1, 0, 1, 86400, 2),
        ("payment", 0, 0, 0, 1, 1),
    ]
    messages = messages_for(stream_of(specs, [(2, 6)]), namespace="t", partitions=2)
    expected = reference(messages, lateness_us=LATENESS_US)
    config = fresh_copy(template, tmp_path / "run")
    state = RedisState(redis_client, prefix=redis_client.prefix, lateness_us=LATENESS_US)

    run_batches(processor_for(config, state), messages, [3])

    assert len(expected.late) == 1
    assert expected.online["card_velocity"][("card-0",)]["card_payments_24h"] == 1
    assert expected.online["driver_activity"][("driver-1",)] == {
        "driver_trips_24h": 1,
        "driver_distinct_riders_7d": 1,
        "driver_assignments_7d": 1,
        "driver_cancellations_7d": 1,
        "driver_cancellation_rate_7d": 1.0,
    }
    assert offline_rows(config) == expected.rows
    assert online_values(config, expected.online) == expected.online


def simulated_messages(hours: float, *, namespace: str) -> list[Message]:
    """Return ``hours`` of the feature tests' simulated world as the bus would deliver them."""
    simulation = Simulation(CONFIG, city_from_file())
    subscribed = set(topics())
    events = [
        emitted.event
        for emitted in simulation.events(until=CONFIG.start + timedelta(hours=hours))
        if emitted.event.topic in subscribed
    ]
    return messages_for(events, namespace=namespace)


@pytest.mark.redis
def test_a_batch_waits_out_a_redis_restart_and_gives_the_brute_force_values(
    template, tmp_path, caplog
):
    # Found by the chaos soak (benchmarks/soak.py): the processor exited when Redis restarted
    # under it. Its own Redis, with an append-only file, stopped before a batch and started
    # again on its data while the batch waits.
    import threading

    import redis

    from devservices import redis as redis_service

    specs = [
        ("card_added", 0, 0, 0, 0, 1),
        ("payment", 0, 0, 0, 0, 2),
        ("payment", 0, 0, 1, 0, 3),
        ("payment", 0, 1, 1, 599, 1),
        ("chargeback", 1, 0, 1, 86400, 2),
        ("payment", 0, 0, 0, 1, 1),
    ]
    messages = messages_for(stream_of(specs, []), namespace="t", partitions=2)
    expected = reference(messages, lateness_us=LATENESS_US)
    config = fresh_copy(template, tmp_path / "run")
    server = redis_service.start(persist=True)
    client = redis.Redis.from_url(server.url, socket_timeout=2, socket_connect_timeout=2)
    processor = processor_for(config, RedisState(client, prefix="t:", lateness_us=LATENESS_US))
    processor.submit(messages[:3])
    server.stop(keep_data=True)
    restarted = []
    back = threading.Timer(
        1.5, lambda: restarted.append(redis_service.start(workdir=server.workdir))
    )
    back.start()
    try:
        processor.submit(messages[3:])
    finally:
        back.join()
        client.close()
        for running in restarted:
            running.stop()

    assert "the store is unavailable" in caplog.text
    assert offline_rows(config) == expected.rows
    assert online_values(config, expected.online) == expected.online


def test_embedded_and_redis_engines_compute_the_same_features(template, redis_url, tmp_path):
    messages = simulated_messages(24, namespace="t")
    expected = reference(messages, lateness_us=LATENESS_US)
    embedded = fresh_copy(template, tmp_path / "embedded")
    with redis_project(tmp_path / "redis", redis_url) as redis:
        for config in (embedded, redis):
            run_batches(processor_for(config, state_from_config(config)), messages, [100])
        served = online_values(redis, expected.online)
        redis_rows = offline_rows(redis)

    assert set(expected.rows) == {
        "card_velocity",
        "card_recency",
        "rider_activity",
        "driver_activity",
        "driver_rider_pair",
        "zone_fraud",
        "driver_fraud",
        "platform_fraud",
    }
    assert offline_rows(embedded) == redis_rows == expected.rows
    assert online_values(embedded, expected.online) == served == expected.online


def test_poison_and_late_events_are_dead_lettered_and_change_nothing(template, tmp_path):
    config = fresh_copy(template, tmp_path / "run")
    bus = EmbeddedBus(config.data_dir / "bus.sqlite3")
    bus.ensure_topics([f"t.{topic}" for topic in topics()], partitions=3)
    first, second, late = stream_of(
        [
            ("payment", 0, 0, 0, 0, 1),
            ("payment", 0, 0, 0, 120, 2),
            ("payment", 0, 0, 0, -61, 3),  # 61 s before the latest payment of its partition
        ],
        [],
    )
    topic = f"t.{PaymentAuthorized.topic}"
    records = [
        Record(topic, first.encode(), key="card-0"),
        *(Record(topic, value, key="card-0") for value in poison_values().values()),
        Record(topic, second.encode(), key="card-0"),
        Record(topic, late.encode(), key="card-0"),
    ]
    assert bus.producer().publish(records) == [None] * len(records)
    processor = StreamProcessor(
        bus=bus,
        config=config,
        state=SqliteState(config.state_path, lateness_us=LATENESS_US),
        namespace="t",
    )

    stats = processor.run(until_idle_s=0.5)

    assert (stats.events, stats.accepted, stats.late, stats.poison) == (7, 2, 1, 4)
    dead = bus.consumer(group="check", topics=["t.deadletter.stream-features"])
    letters = dead.poll(timeout=1.0, max_records=100)
    kinds = sorted(m.header("dlq.error").decode().split(":")[0] for m in letters)
    assert kinds == ["invalid_json", "late", "oversized", "schema", "unknown_version"]
    late_letter = next(m for m in letters if m.header("dlq.error").startswith(b"late:"))
    assert late_letter.value == late.encode()
    assert late_letter.header("dlq.topic") == topic.encode()
    assert late_letter.header("dlq.consumer") == b"stream-features"
    # Only the two on-time payments count, online and offline, and only they are archived.
    served = online_values(config, {"card_velocity": {("card-0",): {}}})["card_velocity"]
    assert served[("card-0",)]["card_payments_24h"] == 2
    assert served[("card-0",)]["card_amount_cents_24h"] == 300
    rows = offline_rows(config)["card_velocity"]
    assert sorted(rows) == [
        (("card-0",), to_us(first.occurred_at)),
        (("card-0",), to_us(second.occurred_at)),
    ]
    archived = pa.concat_tables(
        pq.read_table(f) for f in config.events_dir(PaymentAuthorized.topic).glob("*.parquet")
    )
    assert archived.schema == EVENT_SCHEMA
    assert sorted(archived.column("event_id").to_pylist()) == [
        str(first.event_id),
        str(second.event_id),
    ]
    assert archived.column("payload").to_pylist() == [
        first.encode().decode(),
        second.encode().decode(),
    ]
    state = processor.state.read(entities=[("card_velocity", ("card-0",))])
    stored = {r.event_id for r in state[("card_velocity", ("card-0",))].rows}
    assert stored == {str(first.event_id), str(second.event_id)}


def test_offline_files_are_named_by_time_and_process_and_never_left_half_written(
    template, tmp_path: Path
):
    config = fresh_copy(template, tmp_path / "run")
    messages = simulated_messages(12, namespace="t")
    run_batches(processor_for(config), messages, [20])

    names = sorted(p.name for p in config.view_dir("card_velocity").iterdir())
    pattern = re.compile(rf"^(\d{{16}})-{os.getpid()}-(\d{{6}})\.parquet$")
    assert len(names) == len({pattern.match(n).group(1) for n in names}) > 10
    # Every batch's files carry one stamp; a later batch's stamp sorts after an earlier one's.
    sequence = [int(pattern.match(n).group(2)) for n in names]
    assert sequence == sorted(sequence)


def test_offline_files_wait_for_the_flush_and_hold_what_a_file_per_batch_holds(
    template, tmp_path: Path
):
    messages = simulated_messages(12, namespace="t")
    batches = [messages[i : i + 5] for i in range(0, len(messages), 5)]
    assert len(batches) > OFFLINE_MAX_BATCHES + 1
    every = fresh_copy(template, tmp_path / "every")
    run_batches(processor_for(every), messages, [5])
    waiting = fresh_copy(template, tmp_path / "waiting")
    processor = StreamProcessor(
        bus=EmbeddedBus(waiting.data_dir / "bus.sqlite3"),
        config=waiting,
        state=SqliteState(waiting.state_path, lateness_us=waiting.allowed_lateness_us),
        settings=ProcessorSettings(offline_flush_s=3600.0),
        namespace="t",
    )

    def files() -> int:
        return len(list(waiting.view_dir("card_velocity").glob("*.parquet")))

    for batch in batches[: OFFLINE_MAX_BATCHES - 1]:
        processor.process_batch(batch)
    assert files() == 0
    processor.process_batch(batches[OFFLINE_MAX_BATCHES - 1])
    assert files() == 1
    for batch in batches[OFFLINE_MAX_BATCHES:]:
        processor.process_batch(batch)
    processor._offline_flush(force=True)

    assert files() == -(-len(batches) // OFFLINE_MAX_BATCHES)
    assert offline_rows(waiting) == offline_rows(every)
    events = [
        sorted(
            pq.read_table(config.events_dir(PaymentAuthorized.topic)).column("event_id").to_pylist()
        )
        for config in (waiting, every)
    ]
    assert events[0] == events[1]
    assert len(events[0]) > 0


def test_a_partition_lagging_by_more_than_the_window_still_gets_exact_rows(template, tmp_path):
    # The card's declines (their own topic) stall at day 0 while its payments run to day 3,
    # then resume at day 1: the rows the declines' values need must not have been pruned.
    specs = [
        ("decline", 0, 0, 0, 0, 1),
        *[("payment", 0, 0, 0, 12 * 3600, 1)] * 6,
    ]
    stalled = stream_of(specs, [])
    resumed = event(
        "decline", n=99, at=START + timedelta(days=1), card=0, rider=0, other=0, amount=1
    )
    messages = messages_for([*stalled, resumed], namespace="t", partitions=2)
    expected = reference(messages, lateness_us=LATENESS_US)
    config = fresh_copy(template, tmp_path / "run")
    processor = processor_for(config)

    run_batches(processor, messages, [1])

    assert processor.stats.unexact == 0
    rows = offline_rows(config)["card_velocity"]
    assert rows == expected.rows["card_velocity"]
    assert rows[(("card-0",), to_us(resumed.occurred_at))]["card_declines_1h"] == 1
    assert rows[(("card-0",), to_us(resumed.occurred_at))]["card_payments_24h"] == 2


def test_an_online_row_made_stale_by_another_processor_is_written_again(template, tmp_path):
    # Two processors share the platform entity. A reads the state first, B adds after it and
    # writes its row online before A writes its own, older one: A must notice and rewrite.
    config = fresh_copy(template, tmp_path / "run")
    first, second = stream_of([("chargeback", 0, 0, 0, 0, 1), ("chargeback", 1, 1, 1, 10, 1)], [])
    messages = messages_for([first, second], namespace="t", partitions=2)
    one, other = processor_for(config), processor_for(config)
    write = one.online.write_views

    def write_after_the_other(rows):
        if other.stats.batches == 0:
            other.process_batch(messages[1:])
        write(rows)

    one.online.write_views = write_after_the_other

    one.process_batch(messages[:1])

    assert one.stats.online_rewrites == 1
    expected = reference(messages, lateness_us=LATENESS_US)
    served = online_values(config, expected.online)
    assert served["platform_fraud"][("all",)]["platform_chargebacks_1h"] == 2
    assert served == expected.online
    assert offline_rows(config) == expected.rows


@pytest.mark.slow
def test_the_command_finishes_its_batch_and_exits_0_on_sigterm(template, tmp_path):
    config = fresh_copy(template, tmp_path / "run")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_SECRET_KEY": "tests-only",
        "VAR_DIR": str(tmp_path / "var"),
        "EVENT_BUS": "embedded",
        "EVENT_LOG_PATH": str(tmp_path / "bus.sqlite3"),
        "FEATURES_ONLINE_STORE": "sqlite",
        "FEAST_PROJECT": config.project,
        "FEAST_REGISTRY": config.registry_url,
        "FEATURES_DATA_DIR": str(config.data_dir),
    }
    bus = EmbeddedBus(tmp_path / "bus.sqlite3")
    bus.ensure_topics([f"t.{topic}" for topic in topics()], partitions=3)
    payments = stream_of([("payment", n % 3, 0, 0, 1, 1) for n in range(50)], [])
    bus.producer().publish([Record(f"t.{e.topic}", e.encode(), key=e.key()) for e in payments])
    topic = f"t.{PaymentAuthorized.topic}"
    log = tmp_path / "stream_features.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "consume", "stream-features", "--topic-namespace", "t"],
            cwd=Path(__file__).resolve().parents[2],
            env=env,
            stdout=out,
            stderr=out,
        )
    try:
        assert wait_for(lambda: sum(bus.committed("stream-features", topic).values()) == 50, 60), (
            log.read_text()
        )
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
    assert "stream-features: stopped; 50 events, 50 accepted" in log.read_text()
