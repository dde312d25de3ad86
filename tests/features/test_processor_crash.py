"""``manage.py consume stream-features`` on real Kafka and Redis: killed with SIGKILL mid-stream and
restarted, or run as two processes sharing a consumer group, it computes exactly what one
uninterrupted processor computes: the same online values, the same deduplicated offline rows,
no event counted twice."""

from __future__ import annotations

import signal
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from events.backends.kafka import KafkaBus
from events.bus import Record
from events.contracts import Event, PaymentAuthorized, topic_name
from features.definitions import topics
from features.processor import StreamProcessor, state_from_config
from features.store import FeatureConfig
from simulator.city import city_from_file
from simulator.engine import Simulation
from tests.features.simulated import CONFIG
from tests.features.streams import (
    applied_config,
    messages_for,
    offline_rows,
    online_values,
    redis_project,
    reference,
)
from tests.kafka_namespaces import group_members
from tests.polling import wait_for
from tests.processes import features_env, manage_env, manage_start

PARTITIONS = 3

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]


def simulated_events(hours: float) -> list[Event]:
    """Return ``hours`` of a world ten times the feature tests' one: the events of the
    subscribed topics (some 5,000 a day), chargebacks included, in time order."""
    config = replace(CONFIG, riders=2500, drivers=300)
    subscribed = set(topics())
    return [
        e.event
        for e in Simulation(config, city_from_file()).events(
            until=config.start + timedelta(hours=hours)
        )
        if e.event.topic in subscribed
    ]


@pytest.fixture
def namespace(kafka_bootstrap) -> Iterator[str]:
    """A namespace whose topics (every subscribed one, 3 partitions) exist for this test only."""
    from kafka import KafkaAdminClient

    name = f"test-{uuid.uuid4().hex[:10]}"
    names = [f"{name}.{t}" for t in topics()]
    KafkaBus(bootstrap_servers=kafka_bootstrap).ensure_topics(names, partitions=PARTITIONS)
    yield name
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="tests")
    existing = set(admin.list_topics())
    admin.delete_topics([t for t in existing if t.startswith(f"{name}.")])
    admin.close()


@pytest.fixture
def redis_config(redis_url, tmp_path) -> Iterator[FeatureConfig]:
    """An applied project on Redis (window state and online store), its keys deleted after."""
    with redis_project(tmp_path / "features", redis_url) as config:
        yield config


def publish(bus: KafkaBus, events: list[Event], namespace: str) -> None:
    producer = bus.producer()
    records = [Record(topic_name(namespace, e.topic), e.encode(), key=e.key()) for e in events]
    assert producer.publish(records) == [None] * len(records)
    producer.close()


def process_env(config: FeatureConfig, kafka_bootstrap: str, tmp: Path) -> dict[str, str]:
    """Environment pointing ``manage.py consume stream-features`` at this test's broker and
    stores."""
    return manage_env(
        **features_env(config),
        VAR_DIR=str(tmp / "var"),
        EVENT_BUS="kafka",
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        # Offline files (and commits) every few batches, so a kill finds batches processed
        # (state, online store) whose files are not written and offsets not committed.
        FEATURES_OFFLINE_FLUSH_SECONDS="0.1",
    )


def start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return manage_start(["consume", "stream-features", *argv], env, log)


def finish(process: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    """Wait for ``process`` to exit 0 on its own (``--until-idle``)."""
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGABRT)  # faulthandler prints every thread's stack
        process.wait(timeout=10)
        pytest.fail(f"consume stream-features did not finish:\n{log.read_text()[-5000:]}")
    assert code == 0, log.read_text()[-5000:]


def reference_run(bus: KafkaBus, namespace: str, tmp: Path) -> FeatureConfig:
    """Run one processor in this process, uninterrupted, over the namespace's topics (its own
    group, SQLite state and stores); return its config."""
    config = applied_config(tmp)
    processor = StreamProcessor(
        bus=bus,
        config=config,
        state=state_from_config(config),
        group=f"{namespace}-reference",
        namespace=namespace,
    )
    processor.run(until_idle_s=5)
    return config


def assert_computes_what_one_does(
    bus: KafkaBus, namespace: str, config: FeatureConfig, events: list[Event], tmp: Path
) -> dict:
    """Assert that the processes' offline rows and online values over ``events`` are those of
    one uninterrupted processor (``reference_run``) and of the brute-force reference, with no
    event late; return the online values."""
    expected = reference_run(bus, namespace, tmp / "reference")
    assert offline_rows(config) == offline_rows(expected)
    messages = messages_for(events, namespace=namespace, partitions=PARTITIONS)
    brute = reference(messages, lateness_us=config.allowed_lateness_us)
    assert brute.late == []
    served = online_values(config, brute.online)
    assert served == online_values(expected, brute.online) == brute.online
    return served


def test_killed_mid_stream_and_restarted_it_computes_what_an_uninterrupted_run_does(
    kafka_bootstrap, redis_config, namespace, tmp_path
):
    bus = KafkaBus(bootstrap_servers=kafka_bootstrap)
    events = simulated_events(24)
    assert len(events) > 4000
    cut = 2 * len(events) // 3
    publish(bus, events[:cut], namespace)
    config = redis_config
    env = process_env(config, kafka_bootstrap, tmp_path)
    log = tmp_path / "stream_features.log"
    argv = ["--topic-namespace", namespace, "--group", f"{namespace}-g", "--max-records", "100"]
    written = config.offline_dir / "views"

    process = start(argv, env, log)
    # Kill it once a third flush is being written: the first two are committed.
    batches = lambda: len({p.name.split("-")[0] for p in written.rglob("*.parquet")})  # noqa: E731
    assert wait_for(lambda: batches() >= 3, 120, 0.02), log.read_text()
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    committed = sum(
        sum(bus.committed(f"{namespace}-g", topic_name(namespace, t)).values()) for t in topics()
    )
    assert 0 < committed < cut
    publish(bus, events[cut:], namespace)
    process = start([*argv, "--until-idle", "5"], env, log)
    finish(process, log)

    served = assert_computes_what_one_does(bus, namespace, config, events, tmp_path)
    # No payment counted twice: the stream spans 24 h, so a card's latest 24 h count is all of
    # its payments.
    payments: dict[tuple[str, ...], int] = {}
    for e in events:
        if isinstance(e, PaymentAuthorized):
            payments[(e.card_id,)] = payments.get((e.card_id,), 0) + 1
    counts = {key: v["card_payments_24h"] for key, v in served["card_velocity"].items()}
    assert {key: counts[key] for key in payments} == payments


def test_two_processes_in_one_group_compute_what_one_does(
    kafka_bootstrap, redis_config, namespace, tmp_path
):
    bus = KafkaBus(bootstrap_servers=kafka_bootstrap)
    events = simulated_events(24)
    config = redis_config
    env = process_env(config, kafka_bootstrap, tmp_path)
    group = f"{namespace}-g"
    argv = ["--topic-namespace", namespace, "--group", group, "--until-idle", "8"]
    logs = [tmp_path / f"stream_features-{n}.log" for n in (1, 2)]

    processes = [start(argv, env, log) for log in logs]
    # Publish once both own partitions, so the stream is split between them.
    assert wait_for(lambda: group_members(kafka_bootstrap, group) == 2, 60, 0.2), [
        log.read_text() for log in logs
    ]
    publish(bus, events, namespace)
    for process, log in zip(processes, logs, strict=True):
        finish(process, log)

    processed = [int(log.read_text().split("stopped; ")[1].split(" events")[0]) for log in logs]
    assert all(n > 0 for n in processed), processed
    assert sum(processed) >= len(events)
    assert_computes_what_one_does(bus, namespace, config, events, tmp_path)


def test_a_member_joining_then_another_killed_mid_stream_leave_what_one_computes(
    kafka_bootstrap, redis_config, namespace, tmp_path
):
    bus = KafkaBus(bootstrap_servers=kafka_bootstrap)
    events = simulated_events(24)
    third = len(events) // 3
    config = redis_config
    env = process_env(config, kafka_bootstrap, tmp_path)
    group = f"{namespace}-g"
    argv = ["--topic-namespace", namespace, "--group", group, "--max-records", "50"]
    logs = [tmp_path / f"stream_features-{n}.log" for n in (1, 2)]
    written = config.offline_dir / "views"
    flushes = lambda: len({p.name.split("-")[0] for p in written.rglob("*.parquet")})  # noqa: E731

    first = start(argv, env, logs[0])
    publish(bus, events[:third], namespace)
    assert wait_for(lambda: flushes() >= 2, 120, 0.02), logs[0].read_text()
    # A second member joins mid-stream: the partitions are shared out again.
    # Idle long enough to outlast the session timeout (10 s) that hands it the dead one's share.
    second = start([*argv, "--until-idle", "25"], env, logs[1])
    assert wait_for(lambda: group_members(kafka_bootstrap, group) == 2, 120, 0.2), [
        log.read_text()[-3000:] for log in logs
    ]
    publish(bus, events[third : 2 * third], namespace)
    # The first dies mid-stream: the survivor takes its partitions from their committed offsets.
    before = flushes()
    assert wait_for(lambda: flushes() >= before + 2, 120, 0.02), logs[0].read_text()[-3000:]
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    publish(bus, events[2 * third :], namespace)
    finish(second, logs[1])

    assert_computes_what_one_does(bus, namespace, config, events, tmp_path)
