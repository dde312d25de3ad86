"""The scorer on real Kafka, Redis and PostgreSQL: a stream scored once per payment event
whatever is redelivered, one verdict published for each; ``manage.py consume fraud-scorer``
killed with SIGKILL mid-stream and restarted loses no event or verdict, duplicates no score and
leaves none unlogged."""

from __future__ import annotations

import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from events.backends.kafka import KafkaBus
from events.bus import Record
from events.contracts import FraudScored, PaymentAuthorized, topic_name
from features.served_log import logged_features
from features.store import FeatureConfig
from fraud.models import FraudScore, UnloggedScore
from fraud.scorer import Scorer, ScorerSettings
from tests.features.streams import applied_config
from tests.fraud.factories import model_deploy, payment
from tests.fraud.scorer_helpers import payments_applied, published
from tests.polling import wait_for
from tests.processes import database_env, features_env, manage_env, manage_start

PARTITIONS = 3

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def namespace(kafka_bootstrap) -> Iterator[str]:
    """A namespace whose payments topic (3 partitions) exists for this test only."""
    from kafka import KafkaAdminClient

    name = f"test-{uuid.uuid4().hex[:10]}"
    bus = KafkaBus(bootstrap_servers=kafka_bootstrap)
    bus.ensure_topics([f"{name}.{PaymentAuthorized.topic}"], partitions=PARTITIONS)
    yield name
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="tests")
    admin.delete_topics([t for t in admin.list_topics() if t.startswith(f"{name}.")])
    admin.close()


def publish(bus: KafkaBus, events: list[PaymentAuthorized], namespace: str) -> None:
    producer = bus.producer()
    records = [Record(topic_name(namespace, e.topic), e.encode(), key=e.key()) for e in events]
    assert producer.publish(records) == [None] * len(records)
    producer.close()


def stream(count: int, cards: int = 50) -> list[PaymentAuthorized]:
    """``count`` payments over ``cards`` cards, a fifth of them large."""
    return [
        payment(card_id=f"card-{i % cards}", amount_cents=9000 if i % 5 == 0 else 1200)
        for i in range(count)
    ]


def test_a_stream_is_scored_once_per_event_even_when_redelivered(
    kafka_bootstrap, redis_url, namespace, tmp_path
):
    config = applied_config(tmp_path / "store", online="redis", redis_url=redis_url)
    # The scorer counts each payment in its card's windows: one payment per card, but card-7
    # has eight before it.
    payments_applied(config, "card-7", 8)
    model_deploy(tmp_path, version="champ", review=0.5, decline=0.999)
    bus = KafkaBus(bootstrap_servers=kafka_bootstrap)
    events = stream(600, cards=600)
    publish(bus, events, namespace)
    settings = ScorerSettings(max_records=100, feature_timeout_s=5.0)

    Scorer(bus=bus, config=config, settings=settings, namespace=namespace).run(until_idle_s=3)
    publish(bus, events[:250], namespace)  # the producer retried: the same events again
    again = Scorer(bus=bus, config=config, settings=settings, namespace=namespace)
    stats = again.run(until_idle_s=3)

    assert (stats.events, stats.scored, stats.duplicates) == (250, 0, 250)
    ids = {e.event_id for e in events}
    assert set(FraudScore.objects.values_list("event_id", flat=True)) == ids
    assert FraudScore.objects.count() == 600
    verdicts = published(bus, topic_name(namespace, FraudScored.topic))
    assert sorted(v.payment_event_id for v in verdicts) == sorted(ids)
    assert set(logged_features(config)["event_id"]) == {str(i) for i in ids}
    burst = FraudScore.objects.filter(card_id="card-7")
    assert set(burst.values_list("decision", flat=True)) == {"review"}
    assert FraudScore.objects.exclude(card_id="card-7").filter(decision="review").count() == 0
    committed = bus.committed("fraud-scorer", topic_name(namespace, PaymentAuthorized.topic))
    assert sum(committed.values()) == 850


def process_env(config: FeatureConfig, kafka_bootstrap: str, tmp: Path) -> dict[str, str]:
    """Environment pointing ``manage.py consume fraud-scorer`` at this test's database, broker
    and stores."""
    return manage_env(
        **database_env(),
        **features_env(config),
        VAR_DIR=str(tmp / "var"),
        EVENT_BUS="kafka",
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        # A busy test machine must not degrade a batch by chance.
        FRAUD_FEATURE_TIMEOUT_MS="5000",
    )


def start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return manage_start(["consume", "fraud-scorer", *argv], env, log)


def test_killed_mid_stream_and_restarted_it_scores_every_event_once_and_logs_all(
    kafka_bootstrap, redis_url, namespace, tmp_path
):
    config = applied_config(tmp_path / "store", online="redis", redis_url=redis_url)
    model_deploy(tmp_path, version="champ")
    bus = KafkaBus(bootstrap_servers=kafka_bootstrap)
    events = stream(3000)
    publish(bus, events[:2000], namespace)
    env = process_env(config, kafka_bootstrap, tmp_path)
    log = tmp_path / "score.log"
    argv = ["--topic-namespace", namespace, "--group", f"{namespace}-g", "--max-records", "20"]

    process = start(argv, env, log)
    assert wait_for(lambda: FraudScore.objects.count() >= 400, 120, 0.01), log.read_text()
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    assert FraudScore.objects.count() < 2000
    publish(bus, events[2000:], namespace)
    process = start([*argv, "--until-idle", "5"], env, log)
    try:
        code = process.wait(timeout=300)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGABRT)  # faulthandler prints every thread's stack
        process.wait(timeout=10)
        pytest.fail(f"score did not finish:\n{log.read_text()[-5000:]}")
    assert code == 0, log.read_text()[-5000:]

    ids = {e.event_id for e in events}
    assert FraudScore.objects.count() == 3000
    assert set(FraudScore.objects.values_list("event_id", flat=True)) == ids
    # Every verdict published; those the killed scorer sent and did not commit, twice.
    verdicts = published(bus, topic_name(namespace, FraudScored.topic))
    assert {v.payment_event_id for v in verdicts} == ids
    assert len(verdicts) < 3000 + 2000
    assert UnloggedScore.objects.count() == 0
    assert set(logged_features(config)["event_id"]) == {str(i) for i in ids}
    assert "fraud-scorer: stopped; " in log.read_text()
