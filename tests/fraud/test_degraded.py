"""Degraded mode on a real Redis online store of its own: stopped or hung mid-run, the scorer
keeps scoring on default values within its read budget, marks the scores degraded, sends high
amounts to review, logs what it served; once Redis is back, the degraded scores are rescored."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pandas as pd
import pytest

from devservices import ServiceError
from devservices import redis as devredis
from features.repo import apply_repo
from features.served_log import logged_features
from fraud.models import FraudScore
from fraud.scoring import UNSERVED
from fraud.services import scores_rescore
from tests.conftest import service_unavailable
from tests.features.stores import feature_config
from tests.fraud.factories import FEATURES, VELOCITY, model_deploy, payment
from tests.fraud.scorer_helpers import batch, models, payments_applied, published, scorer_make

pytestmark = [pytest.mark.redis, pytest.mark.django_db]

BUDGET_S = 0.2


@pytest.fixture
def redis_service() -> Iterator:
    """A Redis server for this test alone: it is stopped and restarted."""
    try:
        service = devredis.start()
    except ServiceError as exc:
        service_unavailable("redis", exc.reason)
    yield service
    service.stop()


def _port(service) -> int:
    return int(service.url.rsplit(":", 1)[1].split("/")[0])


def test_redis_down_degrades_scores_reviews_high_amounts_and_rescores_later(
    redis_service, tmp_path
):
    config = feature_config(tmp_path, online="redis", redis_url=redis_service.url)
    apply_repo(config)
    scorer = scorer_make(config, tmp_path, feature_timeout_s=BUDGET_S)
    model_deploy(tmp_path, version="champ", review=0.5, decline=0.999)
    payments_applied(config, "card-burst", 8)
    before = payment(card_id="card-burst", amount_cents=100)
    batch(scorer, [before])
    assert FraudScore.objects.get(event_id=before.event_id).degraded is False

    redis_service.stop()
    high = payment(card_id="card-burst", amount_cents=9000)
    low = payment(card_id="card-other", amount_cents=100)
    batch(scorer, [high, low])

    scores = {s.event_id: s for s in FraudScore.objects.filter(degraded=True)}
    assert sorted(scores) == sorted([high.event_id, low.event_id])
    # Every input but the one computed from the request alone: is_new_card reads 1 for a card
    # whose card_added_at was not read, so it is not served as served either.
    degraded = [n for n in FEATURES if n != "hour_of_day"]
    assert scores[high.event_id].degraded_features == degraded
    assert (scores[high.event_id].decision, scores[low.event_id].decision) == ("review", "approve")
    (verdict,) = [
        v for v in published(scorer.bus, "t.fraud.scored.v1") if v.payment_event_id == high.event_id
    ]
    assert (verdict.degraded, verdict.decision) == (True, "review")
    assert scorer.stats.degraded == 2
    log = logged_features(config).set_index("event_id")
    assert len(log) == 3
    assert log.loc[str(high.event_id), f"{VELOCITY}__status"] == UNSERVED
    assert log.loc[str(high.event_id), VELOCITY] is pd.NA

    # The store is still down: a rescore changes nothing.
    assert scores_rescore(models=models(), reader=scorer.reader) == 0
    assert FraudScore.objects.filter(rescored_at__isnull=False).count() == 0

    restarted = devredis.start(port=_port(redis_service))
    try:
        # Redis restarted empty: the processor applies the card's payments again (the eighth
        # before and the one scored before the outage make 9 at the payment's instant).
        payments_applied(config, "card-burst", 9)
        assert scores_rescore(models=models(), reader=scorer.reader) == 2
        assert scores_rescore(models=models(), reader=scorer.reader) == 0
        rescored = FraudScore.objects.get(event_id=high.event_id)
        assert rescored.rescored_at is not None
        assert rescored.score > 0.5 > scores[high.event_id].score
        assert rescored.reasons[0]["text"] == "9 payments on this card in the last 10 minutes"
        # How it was decided stays: the decision was published and acted upon.
        assert (rescored.decision, rescored.degraded) == ("review", True)
        assert rescored.id == scores[high.event_id].id
        assert len(published(scorer.bus, "t.fraud.scored.v1")) == 3  # none for a rescore
    finally:
        scorer.reader.close()
        restarted.stop()


def test_a_hung_redis_degrades_within_the_read_budget(redis_service, tmp_path):
    config = feature_config(tmp_path, online="redis", redis_url=redis_service.url)
    apply_repo(config)
    scorer = scorer_make(config, tmp_path, feature_timeout_s=BUDGET_S)
    model_deploy(tmp_path, version="champ")
    os.kill(redis_service.process.pid, signal.SIGSTOP)
    try:
        hung = payment(card_id="card-1", amount_cents=9000)
        batch(scorer, [hung])
        # The next batch finds the hung read still bounded by the client's own timeout.
        batch(scorer, [payment(card_id="card-2")])
    finally:
        os.kill(redis_service.process.pid, signal.SIGCONT)
    assert list(FraudScore.objects.order_by("id").values_list("degraded", "decision")) == [
        (True, "review"),
        (True, "approve"),
    ]
    scorer.reader.close()
