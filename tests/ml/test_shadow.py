"""The shadow report (``ml.shadow``, ``ml.selectors.shadow_of``) and the shadows' promotion
rule (``ml.services.shadows_check``): a shadow compared with the champion on the same payments,
labels as known or matured; one no worse moves to canary when that is switched on, one that
over-flags stays a shadow."""

from __future__ import annotations

import uuid
from datetime import timedelta

import numpy as np
import pytest

from fraud.models import Deployment, ShadowScore
from ml.labels import REVIEW, Evidence
from ml.models import RoleChange
from ml.selectors import shadow_of
from ml.services import champion_check, label_record, model_promote, shadows_check
from ml.shadow import shadow_report
from tests.fraud.live_factories import score_make
from tests.ml.registered import NOW, model_registered

NAN = float("nan")


def test_the_report_compares_two_models_on_the_same_payments():
    report = shadow_report(
        champion_scores=np.array([0.9, 0.8, 0.1, 0.2, 0.05]),
        champion_decisions=np.array(["decline", "review", "approve", "approve", "approve"]),
        shadow_scores=np.array([0.95, 0.3, 0.6, 0.1, 0.02]),
        shadow_decisions=np.array(["decline", "approve", "review", "approve", "approve"]),
        labels=np.array([1, 0, 1, 0, NAN]),
    )

    assert report["payments"] == 5
    assert report["agreement"] == pytest.approx(3 / 5)
    assert report["flag_agreement"] == pytest.approx(3 / 5)
    assert report["flagged"] == {"champion": pytest.approx(0.4), "shadow": pytest.approx(0.4)}
    assert report["declined"] == {"champion": pytest.approx(0.2), "shadow": pytest.approx(0.2)}
    assert report["rank_correlation"] == pytest.approx(0.7)
    assert (report["labelled"], report["frauds"]) == (4, 2)
    # The champion flagged a fraud and a legitimate payment; the shadow both frauds.
    assert report["champion"]["precision"] == 0.5
    assert report["champion"]["recall"] == 0.5
    assert report["shadow"]["precision"] == 1.0
    assert report["shadow"]["recall"] == 1.0
    assert report["shadow"]["average_precision"] == 1.0
    assert report["champion"]["average_precision"] == pytest.approx(0.75)
    assert shadow_report(
        champion_scores=np.array([]),
        champion_decisions=np.array([]),
        shadow_scores=np.array([]),
        shadow_decisions=np.array([]),
        labels=np.array([]),
    ) == {"payments": 0}


def test_the_report_gives_each_models_prediction_time_where_it_was_kept():
    rng = np.random.default_rng(3)
    champion_us = rng.uniform(20, 40, 200)
    shadow_us = np.append(rng.uniform(60, 80, 199), NAN)  # one not kept
    report = shadow_report(
        champion_scores=rng.random(200),
        champion_decisions=np.array(["approve"] * 200),
        shadow_scores=rng.random(200),
        shadow_decisions=np.array(["approve"] * 200),
        labels=np.full(200, NAN),
        champion_us=champion_us,
        shadow_us=shadow_us,
    )

    assert report["model_us"]["champion"] == {
        "p50": pytest.approx(np.percentile(champion_us, 50)),
        "p99": pytest.approx(np.percentile(champion_us, 99)),
    }
    assert report["model_us"]["shadow"]["p99"] == pytest.approx(np.percentile(shadow_us[:-1], 99))
    assert 60 < report["model_us"]["shadow"]["p50"] < 80


def _pairs(
    shadow: str,
    rows: list[tuple[str, float, str, float, bool | None]],
    *,
    age: timedelta,
    times: tuple[float, float] | None = None,
):
    """Scores of the champion and ``shadow`` on the same payments: (champion decision, its score,
    the shadow's decision, its score, the label: None for none yet); ``times``: the two models'
    prediction µs."""
    champion_us, shadow_us = times or (None, None)
    for decision, score, shadow_decision, shadow_score, fraud in rows:
        scored = score_make(
            decision=decision, score=score, scored_at=NOW - age, model_us=champion_us
        )
        ShadowScore.objects.create(
            event_id=scored.event_id,
            model_version=shadow,
            score=shadow_score,
            decision=shadow_decision,
            scored_at=scored.scored_at,
            model_us=shadow_us,
        )
        if fraud is not None:
            label_record(
                payment_id=scored.payment_id,
                evidence=Evidence(
                    REVIEW, fraud, "x", scored.occurred_at + timedelta(minutes=5), str(uuid.uuid4())
                ),
            )


@pytest.fixture
def shadowed(settings):
    settings.ML_SHADOW_TO_CANARY = True
    settings.ML_SHADOW_MIN_SAMPLE = 200
    champion, shadow = model_registered(1), model_registered(2)
    model_promote(version=champion)
    model_promote(version=shadow, role="shadow")
    return champion, shadow


@pytest.mark.django_db
def test_the_report_counts_outcomes_once_the_payments_matured(shadowed):
    _, shadow = shadowed
    _pairs(shadow, [("review", 0.7, "review", 0.8, True)], age=timedelta(days=4))
    _pairs(shadow, [("approve", 0.1, "review", 0.6, None)], age=timedelta(days=4))  # no label
    # Young: the analyst's decision is in, but only the champion's flags are decided that
    # soon; counted now, they would judge both models on the champion's flags alone.
    _pairs(shadow, [("review", 0.9, "approve", 0.1, False)], age=timedelta(hours=1))

    report = shadow_of(shadow, now=NOW, maturity=timedelta(days=3))

    assert report["payments"] == 3
    assert (report["labelled"], report["frauds"]) == (2, 1)
    assert report["shadow"]["precision"] == 0.5  # its extra flag proved legitimate at maturity
    assert report["champion"]["precision"] == 1.0


@pytest.mark.django_db
def test_the_report_hour_by_hour_has_its_outcomes_and_times(shadowed):
    _, shadow = shadowed
    old = [("review", 0.7, "review", 0.8, True), ("approve", 0.1, "review", 0.6, False)]
    _pairs(shadow, old, age=timedelta(days=4), times=(30.0, 90.0))
    _pairs(shadow, [("approve", 0.1, "approve", 0.2, None)] * 3, age=timedelta(hours=1))

    report = shadow_of(shadow, now=NOW, maturity=timedelta(days=3), per_hour=True)

    hours = report["per_hour"]
    assert [h["payments"] for h in hours] == [2, 3]
    first, last = hours[0]["report"], hours[1]["report"]
    # The old hour matured: its outcomes are known, the shadow's extra flag proved legitimate.
    assert (first["labelled"], first["frauds"]) == (2, 1)
    assert (first["shadow"]["precision"], first["champion"]["precision"]) == (0.5, 1.0)
    assert first["model_us"]["shadow"]["p50"] == 90.0
    assert last["labelled"] == 0
    assert last["model_us"] == {"champion": None, "shadow": None}
    assert hours[1]["agreement"] == 1.0
    # The whole window's times are those kept.
    assert report["model_us"]["champion"]["p99"] == 30.0


@pytest.mark.django_db
def test_a_shadow_no_worse_than_the_champion_moves_to_canary(shadowed, settings):
    _, shadow = shadowed
    rows = [("approve", 0.05, "approve", 0.04, None)] * 190 + [
        ("review", 0.7, "review", 0.8, True)
    ] * 10
    _pairs(shadow, rows, age=timedelta(days=4))

    moved = shadows_check(now=NOW)

    assert [m.model_version for m in moved] == [shadow]
    assert moved[0].reason == "moved from shadow: no worse than the champion on 200 payments"
    assert moved[0].figures["agreement"] == 1.0
    deployment = Deployment.objects.get(model_version=shadow)
    assert (deployment.role, deployment.canary_share) == ("canary", 0.1)
    settings.ML_SHADOW_TO_CANARY = False
    model_promote(version=shadow, role="shadow")
    assert shadows_check(now=NOW) == []  # switched off: nothing moves


@pytest.mark.django_db
def test_a_shadow_that_over_flags_or_is_short_of_payments_stays(shadowed):
    _, shadow = shadowed
    _pairs(shadow, [("approve", 0.05, "review", 0.6, None)] * 150, age=timedelta(days=4))

    assert shadows_check(now=NOW) == []  # 150 payments: too few to judge

    _pairs(shadow, [("approve", 0.05, "review", 0.6, None)] * 60, age=timedelta(days=4))
    assert shadows_check(now=NOW) == []  # it flags everything the champion approves
    assert Deployment.objects.get(model_version=shadow).role == "shadow"
    assert not RoleChange.objects.filter(role="canary").exists()


@pytest.mark.django_db
def test_a_champion_below_its_floor_is_rolled_back_to_its_predecessor(settings):
    settings.ML_CHAMPION_MIN_FRAUDS = 20
    first, second = model_registered(1), model_registered(2)
    model_promote(version=first)
    model_promote(version=second)  # the first stays beside it as a shadow
    assert Deployment.objects.get(model_version=first).role == "shadow"
    old = timedelta(days=4)
    # 30 frauds: the champion flags 10, its predecessor 28; 200 legitimate payments.
    _pairs(first, [("review", 0.8, "review", 0.9, True)] * 10, age=old)
    _pairs(first, [("approve", 0.1, "review", 0.7, True)] * 18, age=old)
    _pairs(first, [("approve", 0.1, "approve", 0.2, True)] * 2, age=old)
    _pairs(first, [("approve", 0.05, "approve", 0.05, None)] * 200, age=old)

    changes = champion_check(now=NOW)

    roles = {d.model_version: d.role for d in Deployment.objects.all()}
    assert roles == {first: "champion", second: "retired"}
    restored = RoleChange.objects.filter(model_version=first).latest("id")
    assert restored.reason == (
        "rolled back to it: the champion's recall 0.33 was below its floor 0.50 on 230 "
        "labelled payments (30 fraud), the previous champion's 0.93"
    )
    assert {c.model_version for c in changes} == {first, second}
    assert champion_check(now=NOW) == []  # no predecessor kept now


@pytest.mark.django_db
def test_a_champion_above_its_floor_or_short_of_frauds_stays(settings):
    settings.ML_CHAMPION_MIN_FRAUDS = 20
    first, second = model_registered(1), model_registered(2)
    model_promote(version=first)
    model_promote(version=second)
    old = timedelta(days=4)
    _pairs(first, [("approve", 0.1, "review", 0.7, True)] * 15, age=old)

    assert champion_check(now=NOW) == []  # 15 frauds: too few to judge

    _pairs(first, [("review", 0.8, "review", 0.9, True)] * 20, age=old)
    assert champion_check(now=NOW) == []  # recall 20 of 35: above its floor
    assert Deployment.objects.get(model_version=second).role == "champion"
