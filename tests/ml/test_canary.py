"""Canary guardrails: the rules (``ml.canary``) and the check on the database
(``ml.services.canaries_check``): a canary that over-flags is rolled back with its reasons and
figures, a sound one stays, a bandit whose arm was rolled back stops; every change of role is
recorded (``RoleChange``)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta

import pytest

from fraud.models import Deployment
from ml.canary import Figures, Guardrails, breaches, wilson_low
from ml.labels import REVIEW, Evidence
from ml.models import RoleChange
from ml.services import (
    bandit_start,
    bandit_update,
    canaries_check,
    label_record,
    model_promote,
)
from tests.fraud.live_factories import score_make
from tests.ml.registered import NOW, model_registered

RULES = Guardrails(min_sample=100)


def _figures(scored: int, flagged: int, *, declined: int = 0, degraded: int = 0, p99=20.0):
    return Figures(scored, flagged, declined, degraded, p99)


# The rules.


def test_the_wilson_bound_is_below_the_share_and_tightens_with_the_sample():
    assert wilson_low(0, 100) == 0.0
    assert wilson_low(9, 100) == pytest.approx(0.0481, abs=1e-3)
    assert wilson_low(90, 1000) == pytest.approx(0.0737, abs=1e-3)
    assert wilson_low(5, 0) == 0.0


def test_a_canary_flagging_three_times_the_champions_share_is_breached():
    found = breaches(_figures(400, 36), _figures(4000, 120), RULES)

    assert found == [
        "it flags 9.0% of its payments against the champion's 3.0% (more than 2 times beyond "
        "chance)"
    ]


def test_a_few_extra_flags_on_a_small_sample_are_chance():
    # 7 flags in 100 against 3 %: more than twice, but within chance.
    assert breaches(_figures(100, 7), _figures(4000, 120), RULES) == []
    # Too few payments to judge at all, however many flags.
    assert breaches(_figures(99, 99), _figures(4000, 120), RULES) == []


def test_declines_degraded_scores_and_latency_each_have_a_guardrail():
    champion = _figures(4000, 120, declined=40, degraded=40, p99=20.0)
    canary = _figures(1000, 30, declined=60, degraded=200, p99=70.0)

    found = breaches(canary, champion, RULES)

    assert [reason.split(" ")[1] for reason in found] == ["declines", "of", "p99"]
    assert found[1].startswith("20.0% of its scores are degraded")
    assert found[2] == "its p99 latency is 70 ms against the champion's 20 ms"


def test_a_canary_failing_to_score_beyond_chance_is_breached():
    champion = _figures(4000, 120)
    # 3 failures in 300: 1 %, within chance of the 1 % allowed; 30 are not.
    assert breaches(replace(_figures(300, 9), errors=3), champion, RULES) == []
    assert breaches(replace(_figures(300, 9), errors=30), champion, RULES) == [
        "it failed to score 10.0% of its payments (the champion decided them) against the "
        "champion's 0.0%"
    ]


# The check.


@pytest.fixture
def deployed():
    champion, canary = model_registered(1), model_registered(2)
    model_promote(version=champion)
    model_promote(version=canary, role="canary", canary_share=0.1)
    return champion, canary


def _scores(version: str, total: int, flagged: int) -> None:
    for i in range(total):
        score_make(
            decision="review" if i < flagged else "approve", scored_at=NOW, model_version=version
        )


@pytest.mark.django_db
def test_a_canary_that_over_flags_is_rolled_back_with_its_reasons(deployed):
    champion, canary = deployed
    _scores(champion, 1000, 30)
    _scores(canary, 300, 36)

    rolled_back = canaries_check()

    assert [r.model_version for r in rolled_back] == [canary]
    change = rolled_back[0]
    assert (change.previous_role, change.role) == ("canary", "retired")
    assert change.reason.startswith("rolled back: it flags 12.0% of its payments")
    assert change.figures["canary"]["flagged"] == 36
    assert change.figures["champion"]["scored"] == 1000
    assert Deployment.objects.get(model_version=canary).role == "retired"
    assert Deployment.objects.get(model_version=champion).role == "champion"
    assert canaries_check() == []  # nothing left to roll back


@pytest.mark.django_db
def test_a_canary_that_fails_to_score_is_rolled_back_even_if_it_decided_nothing(deployed):
    champion, canary = deployed
    _scores(champion, 1000, 30)
    # Every payment of its cards: the champion decided, the canary counted as failed.
    for _ in range(150):
        score_make(decision="approve", scored_at=NOW, model_version=champion, failed_model=canary)

    rolled_back = canaries_check()

    assert [r.model_version for r in rolled_back] == [canary]
    assert rolled_back[0].reason == (
        "rolled back: it failed to score 100.0% of its payments (the champion decided them) "
        "against the champion's 0.0%"
    )
    figures = rolled_back[0].figures
    assert (figures["canary"]["scored"], figures["canary"]["errors"]) == (150, 150)
    # The champion's own figures leave out the payments it decided for the canary.
    assert (figures["champion"]["scored"], figures["champion"]["errors"]) == (1000, 0)


@pytest.mark.django_db
def test_a_sound_canary_stays(deployed):
    champion, canary = deployed
    _scores(champion, 1000, 30)
    _scores(canary, 300, 10)

    assert canaries_check() == []
    assert Deployment.objects.get(model_version=canary).role == "canary"
    assert not RoleChange.objects.filter(role="retired").exists()


@pytest.mark.django_db
def test_a_bandit_whose_arm_was_rolled_back_stops():
    champion, candidate = model_registered(1), model_registered(2)
    model_promote(version=champion)
    bandit_start(candidates=[candidate])
    _scores(champion, 1000, 30)
    _scores(candidate, 300, 60)

    assert [r.model_version for r in canaries_check()] == [candidate]
    experiment = bandit_update(now=NOW)

    assert experiment.status == "stopped"
    assert experiment.note == (
        f"stopped: {candidate} no longer deployed as a canary (rolled back?)"
    )
    assert Deployment.objects.get(model_version=candidate).role == "retired"


@pytest.mark.django_db
def test_every_change_of_role_is_recorded_with_its_reason():
    first, second = model_registered(1), model_registered(2)

    model_promote(version=first)
    model_promote(version=second, role="shadow", reason="a person wants to watch it")
    model_promote(version=second, role="shadow")  # no change: nothing recorded
    model_promote(version=second)

    history = [
        (c.model_version, c.previous_role, c.role, c.reason)
        for c in RoleChange.objects.order_by("id")
    ]
    assert history == [
        (first, "", "champion", "by hand"),
        (second, "", "shadow", "a person wants to watch it"),
        (second, "shadow", "champion", "by hand"),
        (
            first,
            "champion",
            "shadow",
            f"the previous champion, kept as a shadow for a rollback (replaced by {second})",
        ),
    ]


def _decided(version: str, caught: int, false_flags: int, missed: int, approvals: int) -> None:
    """``version``'s decisions four days ago, their outcomes known: flags reviewed, approvals
    matured (``missed`` of them charged back)."""
    at = NOW - timedelta(days=4)
    for i in range(caught + false_flags):
        score = score_make(decision="review", scored_at=at, model_version=version)
        _label(score, fraud=i < caught)
    for i in range(approvals):
        score = score_make(decision="approve", scored_at=at, model_version=version)
        if i < missed:
            _label(score, fraud=True)


def _label(score, *, fraud: bool) -> None:
    label_record(
        payment_id=score.payment_id,
        evidence=Evidence(
            REVIEW, fraud, "x", score.occurred_at + timedelta(minutes=5), str(uuid.uuid4())
        ),
    )


@pytest.mark.django_db
def test_a_canary_that_beats_the_champion_on_known_outcomes_is_promoted(settings):
    settings.ML_CANARY_MIN_REWARDS = 100
    champion, canary = model_registered(1), model_registered(2)
    model_promote(version=champion)
    _decided(canary, 40, 0, 0, 400)  # before it was a canary: not counted
    model_promote(version=canary, role="canary", canary_share=0.5)
    _decided(champion, 20, 20, 10, 400)
    _decided(canary, 38, 2, 1, 400)
    score_make(decision="approve", scored_at=NOW, model_version=champion)  # the stream's clock

    changes = canaries_check()

    assert [(c.model_version, c.role) for c in changes] == [(canary, "champion")]
    assert changes[0].reason == "won against the champion on 880 known outcomes"
    assert changes[0].figures[canary]["flag_right"] == 38
    assert Deployment.objects.get(model_version=champion).role == "shadow"  # kept, for a rollback


@pytest.mark.django_db
def test_a_canary_the_champion_beats_is_retired_and_one_in_doubt_goes_on(settings):
    settings.ML_CANARY_MIN_REWARDS = 100
    champion, canary = model_registered(1), model_registered(2)
    model_promote(version=champion)
    model_promote(version=canary, role="canary", canary_share=0.5)
    _decided(champion, 38, 2, 1, 400)
    _decided(canary, 37, 3, 2, 400)
    score_make(decision="approve", scored_at=NOW, model_version=champion)  # the stream's clock

    assert canaries_check() == []  # within chance: the canary goes on
    assert Deployment.objects.get(model_version=canary).role == "canary"

    _decided(canary, 10, 30, 20, 400)
    score_make(decision="approve", scored_at=NOW, model_version=champion)
    changes = canaries_check()

    assert [(c.model_version, c.role) for c in changes] == [(canary, "retired")]
    assert changes[0].reason.startswith("lost to the champion on ")
    assert Deployment.objects.get(model_version=champion).role == "champion"
