"""Several scorers in one consumer group (``manage.py consume fraud-scorer`` twice, real Kafka,
Redis and PostgreSQL): a second scorer joins mid-stream (a rebalance), then the first is killed
with -9 (another, its partitions' uncommitted batches replayed by the survivor). Every payment
is scored once, logged once and decided once, and the card-sticky canary assignment is the
same whichever process scored a payment."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from devservices.base import free_port
from events.backends.kafka import KafkaBus
from events.bus import Record, records_read
from events.contracts import FraudScored, PaymentAuthorized, decode_record, topic_name
from fraud.decisions import canary_for, card_bucket
from fraud.models import FraudScore, UnloggedScore
from tests.features.streams import applied_config
from tests.fraud.factories import model_deploy, payment
from tests.kafka_namespaces import group_members, kafka_namespace
from tests.polling import wait_for
from tests.processes import database_env, features_env, kill9, manage_env, manage_start, manage_stop
from tests.scrape import answers, sample, scrape

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

PAYMENTS = 3000
PARTITIONS = 4
CANARY_SHARE = 0.3


@pytest.fixture
def namespace(kafka_bootstrap) -> Iterator[str]:
    with kafka_namespace(
        kafka_bootstrap, [PaymentAuthorized.topic, FraudScored.topic], partitions=PARTITIONS
    ) as name:
        yield name


def test_two_scorers_in_a_group_score_log_and_decide_every_payment_once_through_a_kill(
    kafka_bootstrap, redis_url, namespace, tmp_path
):
    config = applied_config(tmp_path / "store", online="redis", redis_url=redis_url)
    model_deploy(tmp_path, version="champ", review=0.5, decline=0.999)
    model_deploy(
        tmp_path, version="canary", role="canary", canary_share=CANARY_SHARE, seed=1,
        review=0.5, decline=0.999,
    )  # fmt: skip
    env = manage_env(
        **database_env(),
        **features_env(config),
        VAR_DIR=str(tmp_path / "var"),
        EVENT_BUS="kafka",
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        FRAUD_FEATURE_TIMEOUT_MS="5000",
    )
    argv = ["consume", "fraud-scorer", "--topic-namespace", namespace, "--group",
            f"{namespace}-scorers", "--max-records", "20"]  # fmt: skip
    names = ("first", "second")
    logs = {name: tmp_path / f"{name}.log" for name in names}
    ports = {name: free_port() for name in names}
    bus = KafkaBus(bootstrap_servers=kafka_bootstrap)
    topic = topic_name(namespace, PaymentAuthorized.topic)
    events = [payment(card_id=f"card-{i % 500}") for i in range(PAYMENTS)]
    third = PAYMENTS // 3
    scores = FraudScore.objects.all()

    def publish(part: list) -> None:
        producer = bus.producer()
        records = [Record(topic, e.encode(), key=e.key()) for e in part]
        assert producer.publish(records) == [None] * len(records)
        producer.close()

    def start(name: str):
        return manage_start(argv, {**env, "METRICS_PORT": str(ports[name])}, logs[name])

    def scored_by(name: str) -> float:
        try:
            text = scrape(f"http://127.0.0.1:{ports[name]}/metrics", timeout_s=2)
        except OSError:
            return 0.0
        return sample(text, "stream_consumer_records_total", consumer="fraud-scorer") or 0.0

    processes = {"first": start("first")}
    try:
        publish(events[:third])
        assert wait_for(lambda: scores.count() == third, 120, 0.1), _tail(logs["first"])
        # The second joins (a rebalance) and takes its share of the next third.
        processes["second"] = start("second")
        assert wait_for(lambda: answers(f"http://127.0.0.1:{ports['second']}/metrics"), 120, 0.5), (
            _tail(logs["second"])
        )
        group = f"{namespace}-scorers"
        assert wait_for(lambda: group_members(kafka_bootstrap, group) == 2, 120, 0.2), _tail(
            logs["second"]
        )
        publish(events[third : 2 * third])
        assert wait_for(lambda: scores.count() == 2 * third, 120, 0.1), _tail(logs["second"])
        assert wait_for(lambda: scored_by("second") > 0, 60, 0.5), _tail(logs["second"])
        # The first is killed mid-stream: the survivor replays its uncommitted batches.
        publish(events[2 * third :])
        assert wait_for(lambda: scores.count() > 2 * third + 50, 60, 0.01)
        kill9(processes["first"])
        at_kill = scores.count()
        assert at_kill < PAYMENTS, "the stream ended before the kill: nothing was tested"
        assert wait_for(lambda: scores.count() >= PAYMENTS, 180, 0.2), _tail(logs["second"])
        # Its last batches logged and their offsets committed.
        assert wait_for(lambda: not UnloggedScore.objects.exists(), 60, 0.2)
    finally:
        for name, process in processes.items():
            if process.poll() is None:
                manage_stop(process, logs[name])

    payment_ids = Counter(scores.values_list("payment_id", flat=True))
    assert len(payment_ids) == PAYMENTS
    assert set(payment_ids.values()) == {1}
    # Decided once: every verdict on the stream, a replayed one the same event again.
    verdicts = [
        decode_record(m.topic, m.value)[0]
        for m in records_read(bus, [topic_name(namespace, FraudScored.topic)], reader="tests")
    ]
    by_event = {v.event_id: v for v in verdicts}
    assert {v.payment_id for v in by_event.values()} == set(payment_ids)
    assert len(by_event) == PAYMENTS
    decided = dict(scores.values_list("payment_id", "decision"))
    assert all(v.decision == decided[v.payment_id] for v in by_event.values())
    # The card-sticky assignment does not depend on the process.
    for card_id, version in scores.values_list("card_id", "model_version"):
        expected = canary_for(card_bucket(card_id), [("canary", CANARY_SHARE)]) or "champ"
        assert version == expected, card_id
    assert {"champ", "canary"} == set(scores.values_list("model_version", flat=True))


def _tail(log) -> str:
    return log.read_text()[-3000:]
