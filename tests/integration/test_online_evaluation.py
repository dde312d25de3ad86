"""Online evaluation on the real pipeline (payments on Kafka scored by ``manage.py consume
fraud-scorer``, PostgreSQL, Redis):

- the automatic rollback: with a champion and a canary that flags every payment (as a model
  trained to over-flag would), Celery beat and a worker on a real Redis broker running
  ``ml.canaries_check``, the canary is retired within a minute of its first decisions, with
  its reasons, and the payments after that are the champion's;
- a bandit's evidence survives the scorer killed with -9 mid-stream and restarted: every
  payment decided once, by one arm, and counted once in that arm's evidence."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from events.backends.kafka import KafkaBus
from events.bus import Record
from events.contracts import PaymentAuthorized, topic_name
from fraud.models import Deployment, FraudScore
from ml.models import RoleChange
from ml.services import bandit_start, bandit_update, model_promote
from tests.features.streams import applied_config
from tests.fraud.factories import model_deploy, payment
from tests.kafka_namespaces import kafka_namespace
from tests.ml.registered import model_registered
from tests.polling import wait_for
from tests.processes import (
    ROOT,
    database_env,
    features_env,
    kill9,
    manage_env,
    manage_start,
    manage_stop,
    redis_database,
)

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

BROKER_DB = 8
# Every other beat task far away: this test is about the canaries' check.
QUIET = {
    name: "86400"
    for name in (
        "FEATURES_MATERIALIZE_EVERY_SECONDS",
        "FEATURES_SERVED_CONSISTENCY_EVERY_SECONDS",
        "ML_TRIGGER_CHECK_SECONDS",
        "ML_BANDIT_UPDATE_SECONDS",
        "FRAUD_RESCORE_EVERY_SECONDS",
    )
}


@pytest.fixture
def namespace(kafka_bootstrap) -> Iterator[str]:
    with kafka_namespace(kafka_bootstrap, [PaymentAuthorized.topic], partitions=2) as name:
        yield name


@pytest.fixture
def broker(redis_url) -> Iterator[str]:
    with redis_database(redis_url, BROKER_DB) as url:
        yield url


def _publish(bus: KafkaBus, namespace: str, count: int) -> None:
    events = [payment(card_id=f"card-{uuid.uuid4().hex[:8]}") for _ in range(count)]
    producer = bus.producer()
    records = [Record(topic_name(namespace, e.topic), e.encode(), key=e.key()) for e in events]
    assert producer.publish(records) == [None] * len(records)
    producer.close()


def _beat_and_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "config", "worker", "-B", "-Q", "default",
                "--pool", "solo", "--without-heartbeat", "--without-gossip", "--without-mingle",
                "--loglevel", "INFO",
            ],
            cwd=ROOT, env=env, stdout=out, stderr=out,
        )  # fmt: skip


def test_a_canary_that_flags_everything_is_rolled_back_within_a_minute(
    kafka_bootstrap, redis_url, broker, namespace, tmp_path
):
    config = applied_config(tmp_path / "store", online="redis", redis_url=redis_url)
    model_deploy(tmp_path, version="champ", review=0.5, decline=0.999)
    model_deploy(
        tmp_path, version="flagger", role="canary", canary_share=0.3, review=0.0, decline=0.999
    )
    env = manage_env(
        **database_env(),
        **features_env(config),
        VAR_DIR=str(tmp_path / "var"),
        EVENT_BUS="kafka",
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        FRAUD_FEATURE_TIMEOUT_MS="5000",
        CELERY_BROKER_URL=broker,
        ML_CANARY_CHECK_SECONDS="2",
        FRAUD_DEPLOYMENT_POLL_SECONDS="0.5",
        **QUIET,
    )
    bus = KafkaBus(bootstrap_servers=kafka_bootstrap)
    scorer_log, celery_log = tmp_path / "scorer.log", tmp_path / "celery.log"
    scorer = manage_start(
        ["consume", "fraud-scorer", "--topic-namespace", namespace, "--group", f"{namespace}-g"],
        env,
        scorer_log,
    )
    celery = _beat_and_worker(env, celery_log)
    try:
        _publish(bus, namespace, 1500)
        canary = FraudScore.objects.filter(model_version="flagger")
        assert wait_for(lambda: canary.count() >= 100, 120, 0.1), scorer_log.read_text()[-3000:]
        first = canary.order_by("scored_at").first().scored_at

        retired = wait_for(
            lambda: Deployment.objects.get(model_version="flagger").role == "retired", 60, 0.2
        )
        assert retired, celery_log.read_text()[-5000:]
        change = RoleChange.objects.get(model_version="flagger")
        assert change.reason.startswith("rolled back: it flags 100.0% of its payments")
        assert (change.at - first).total_seconds() < 60
        champion = FraudScore.objects.filter(model_version="champ")
        assert champion.count() > 0
        assert change.figures["champion"]["flagged"] < champion.count()

        # Once the scorer has polled the deployments (every half second here), every payment
        # is the champion's.
        assert wait_for(lambda: FraudScore.objects.count() >= 1500, 120, 0.1)
        time.sleep(2)
        _publish(bus, namespace, 300)
        assert wait_for(lambda: FraudScore.objects.count() >= 1800, 120, 0.1)
        later = FraudScore.objects.order_by("-id")[:300]
        assert {s.model_version for s in later} == {"champ"}
    finally:
        manage_stop(scorer, scorer_log)
        manage_stop(celery, celery_log)


def test_a_bandits_evidence_survives_the_scorer_killed_mid_stream(
    kafka_bootstrap, redis_url, namespace, tmp_path, settings
):
    settings.ML_MODELS_DIR = tmp_path / "models"
    config = applied_config(tmp_path / "store", online="redis", redis_url=redis_url)
    champion, candidate = model_registered(1), model_registered(2)
    model_promote(version=champion)
    bandit_start(candidates=[candidate])
    env = manage_env(
        **database_env(),
        **features_env(config),
        VAR_DIR=str(tmp_path / "var"),
        EVENT_BUS="kafka",
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        FRAUD_FEATURE_TIMEOUT_MS="5000",
    )
    bus = KafkaBus(bootstrap_servers=kafka_bootstrap)
    log = tmp_path / "scorer.log"
    argv = ["consume", "fraud-scorer", "--topic-namespace", namespace, "--group", f"{namespace}-g"]
    _publish(bus, namespace, 2000)

    scorer = manage_start([*argv, "--max-records", "20"], env, log)
    assert wait_for(lambda: FraudScore.objects.count() >= 400, 120, 0.01), log.read_text()
    kill9(scorer)
    assert FraudScore.objects.count() < 2000
    scorer = manage_start([*argv, "--until-idle", "5"], env, log)
    assert scorer.wait(timeout=300) == 0, log.read_text()[-5000:]

    experiment = bandit_update()

    scores = FraudScore.objects.all()
    assert scores.count() == 2000  # each payment decided once, by one arm
    arms = {arm.model_version: arm for arm in experiment.arms.all()}
    for version in (champion, candidate):
        mine = scores.filter(model_version=version)
        assert arms[version].flagged + arms[version].approved == mine.count()
        assert arms[version].flagged == mine.exclude(decision="approve").count()
    assert 700 < arms[candidate].flagged + arms[candidate].approved < 1300  # half of the cards
