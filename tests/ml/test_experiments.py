"""A bandit on the database (``ml.services.bandit_start`` / ``bandit_update`` / ``bandit_stop``):
candidates deployed as canaries, each arm's evidence read from the scores and labels exactly,
the winner promoted and the rest retired, refusals that write nothing."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from fraud.models import Deployment
from ml.labels import CHARGEBACK, REVIEW, Evidence
from ml.models import Experiment, ExperimentArm
from ml.services import (
    ExperimentRefused,
    bandit_start,
    bandit_update,
    label_record,
    model_promote,
)
from tests.fraud.live_factories import score_make
from tests.ml.registered import NOW, model_registered
from tests.scrape import process_sample

pytestmark = pytest.mark.django_db


@pytest.fixture
def models():
    champion, better, worse = model_registered(1), model_registered(2), model_registered(3)
    model_promote(version=champion, review_threshold=0.4, decline_threshold=0.8)
    return champion, better, worse


def _decided(version: str, *, flags: int = 0, approvals: int = 0, at: datetime = NOW) -> list:
    flagged = [
        score_make(decision="review", scored_at=at, model_version=version) for _ in range(flags)
    ]
    approved = [
        score_make(decision="approve", scored_at=at, model_version=version)
        for _ in range(approvals)
    ]
    return flagged + approved


def _label(score, *, fraud: bool, source: str = REVIEW) -> None:
    detail = "fraud" if source == REVIEW else "10.4"
    known = score.occurred_at + timedelta(hours=1)
    label_record(
        payment_id=score.payment_id,
        evidence=Evidence(source, fraud, detail, known, str(uuid.uuid4())),
    )


def _roles() -> dict[str, tuple[str, float]]:
    return {d.model_version: (d.role, round(d.canary_share, 4)) for d in Deployment.objects.all()}


def test_a_bandit_deploys_each_candidate_as_a_canary_at_an_equal_share(models):
    champion, better, worse = models

    experiment = bandit_start(candidates=[better, worse])

    assert experiment.status == "running"
    assert experiment.champion == champion
    assert _roles() == {
        champion: ("champion", 0.0),
        better: ("canary", 0.3333),
        worse: ("canary", 0.3333),
    }
    # At the champion's thresholds, so the arms differ by their model alone.
    assert {d.review_threshold for d in Deployment.objects.all()} == {0.4}
    assert [a.model_version for a in experiment.arms.order_by("id")] == [champion, better, worse]


def test_a_bandit_is_refused_without_a_sound_candidate_and_writes_nothing(models):
    champion, better, _ = models
    rejected, ungated = (
        model_registered(4, status="rejected"),
        model_registered(5, status="candidate"),
    )
    before = _roles()

    for candidates, reason in (
        ([champion], "is the champion"),
        ([rejected], "is rejected: only an approved model may serve"),
        ([ungated], "is candidate"),
        (["fraud-lgbm-nope"], "no model version"),
        ([], "at least one candidate"),
    ):
        with pytest.raises(ExperimentRefused, match=reason):
            bandit_start(candidates=candidates)
    with pytest.raises(ExperimentRefused, match="leaves nothing"):
        bandit_start(candidates=[better], floor=0.6)

    assert Experiment.objects.count() == 0
    assert _roles() == before


def test_only_one_bandit_runs_at_a_time(models):
    _, better, worse = models
    bandit_start(candidates=[better])

    with pytest.raises(ExperimentRefused, match="already running"):
        bandit_start(candidates=[worse])

    assert Experiment.objects.count() == 1
    assert not Deployment.objects.filter(model_version=worse).exists()


def test_an_update_reads_each_arms_flags_approvals_and_rewards(models):
    champion, better, _ = models
    _decided(champion, flags=5, approvals=5)  # before the bandit: not counted
    bandit_start(candidates=[better], min_samples=10_000)
    matured = NOW - timedelta(days=4)
    # The champion: 4 flags (2 proved fraud, 1 legitimate, 1 not reviewed yet), 10 approvals
    # matured (one a fraud charged back) and 6 too young to count.
    flags = _decided(champion, flags=4, at=matured)
    _label(flags[0], fraud=True)
    _label(flags[1], fraud=True, source=CHARGEBACK)
    _label(flags[2], fraud=False)
    old = _decided(champion, approvals=10, at=matured)
    _label(old[0], fraud=True, source=CHARGEBACK)
    young = _decided(champion, approvals=6, at=NOW - timedelta(hours=1))
    _label(young[0], fraud=True, source=CHARGEBACK)  # not matured: not counted yet
    # The candidate: 2 flags, both fraud; 3 approvals matured.
    for score in _decided(better, flags=2, at=matured):
        _label(score, fraud=True)
    _decided(better, approvals=3, at=matured)

    experiment = bandit_update(now=NOW)

    assert experiment.status == "running"
    assert experiment.updates == 1
    arms = {a.model_version: a for a in ExperimentArm.objects.all()}
    counts = ("flagged", "approved", "flag_right", "flag_wrong", "approval_right", "approval_wrong")
    assert [getattr(arms[champion], n) for n in counts] == [4, 16, 2, 1, 9, 1]
    assert [getattr(arms[better], n) for n in counts] == [2, 3, 2, 0, 3, 0]
    assert sum(a.share for a in arms.values()) == pytest.approx(1.0)
    # The worker's metrics tell each arm's evidence, chance and share as saved.
    for version, arm in arms.items():
        assert [process_sample("ml_bandit_evidence", arm=version, evidence=n) for n in counts] == [
            getattr(arm, n) for n in counts
        ]
        assert process_sample("ml_bandit_chance_best", arm=version) == arm.chance_best
        assert process_sample("ml_bandit_share", arm=version) == arm.share
    assert Deployment.objects.get(model_version=better).canary_share == pytest.approx(
        arms[better].share
    )


def test_the_best_arm_is_promoted_and_the_others_retired(models):
    champion, better, worse = models
    bandit_start(candidates=[better, worse], min_samples=50)
    matured = NOW - timedelta(days=4)
    for version, caught, false_flags, missed in (
        (champion, 20, 20, 10),
        (better, 38, 2, 1),
        (worse, 10, 30, 20),
    ):
        flags = _decided(version, flags=caught + false_flags, at=matured)
        for i, score in enumerate(flags):
            _label(score, fraud=i < caught)
        approvals = _decided(version, approvals=400, at=matured)
        for score in approvals[:missed]:
            _label(score, fraud=True, source=CHARGEBACK)

    experiment = bandit_update(now=NOW)

    assert experiment.status == "decided"
    assert experiment.winner == better
    assert "promoted to champion" in experiment.note
    roles = {v: r for v, (r, _) in _roles().items()}
    # The champion it replaced stays beside it as a shadow, for a rollback.
    assert roles == {champion: "shadow", better: "champion", worse: "retired"}
    assert bandit_update(now=NOW) is None  # nothing runs any more


def test_a_bandit_whose_champion_was_replaced_stops_and_retires_its_candidates(models):
    champion, better, worse = models
    bandit_start(candidates=[better])
    model_promote(version=worse)  # a person promotes another model meanwhile

    experiment = bandit_update(now=NOW)

    assert experiment.status == "stopped"
    assert champion in experiment.note
    roles = {v: r for v, (r, _) in _roles().items()}
    assert roles == {champion: "shadow", better: "retired", worse: "champion"}


def test_the_command_starts_shows_and_stops_a_bandit(models, capsys):
    champion, better, _ = models

    call_command("bandit", "start", better)
    call_command("bandit", "status")
    call_command("bandit", "stop")
    out = capsys.readouterr().out

    assert re.match(r"bandit \d+: running", out)
    assert f"{champion} (champion): share 50.0%" in out
    assert f"{better} (candidate): share 50.0%" in out
    assert "stopped. stopped by hand" in out
    assert Deployment.objects.get(model_version=better).role == "retired"
    with pytest.raises(CommandError, match="no bandit is running"):
        call_command("bandit", "stop")
