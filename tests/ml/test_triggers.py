"""The learning loop's triggers: the rules (``ml.triggers``), the drift index (``ml.drift``)
and the check on the database (``ml.services.triggers_check``): figures measured in event
time, the training started, each firing recorded."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from fraud.models import FraudScore
from ml.drift import drift_report, psi, reference
from ml.labels import CHARGEBACK, REVIEW, Evidence
from ml.models import TrainingRun, TriggerFiring
from ml.services import label_record, model_promote, training_request, training_run
from ml.services.triggers import triggers_check
from ml.triggers import DRIFT, PERFORMANCE, TIME, VOLUME, Observed, TriggerSettings, firings
from tests.fraud.live_factories import score_make
from tests.ml.logs import logs_with_labels
from tests.scrape import process_sample

T = datetime(2026, 3, 1, tzinfo=UTC)
RULES = TriggerSettings(
    every=timedelta(hours=24),
    labels=100,
    window=timedelta(hours=24),
    min_precision=0.2,
    min_recall=0.5,
    min_sample=10,
    max_psi=0.2,
    min_drift_sample=100,
    cooldown=timedelta(hours=6),
)


def _fired(**observed) -> list[tuple[str, str]]:
    return [(f.trigger, f.kind) for f in firings(Observed(now=T, **observed), RULES)]


# The rules.


def test_nothing_fires_on_a_quiet_stream():
    assert _fired(last_cut=T - timedelta(hours=1), new_labels=99, psi={"score": 0.1}) == []
    assert _fired(last_cut=None) == []


def test_time_asks_for_a_full_retrain_once_the_last_cut_is_old_and_labels_came_since():
    assert _fired(last_cut=T - timedelta(hours=23, minutes=59), new_labels=10) == []
    assert _fired(last_cut=T - timedelta(hours=24), new_labels=10) == [(TIME, "full")]
    # Nothing new to learn from (fewer than the minimum sample of labels): no retrain.
    assert _fired(last_cut=T - timedelta(days=300), new_labels=9) == []


def test_volume_asks_for_a_fine_tune_every_k_labels():
    assert _fired(last_cut=T, new_labels=100) == [(VOLUME, "fine_tune")]
    # Counted since the last fine-tune or the champion, when the caller says.
    assert _fired(last_cut=T, new_labels=5, fine_tune_labels=100) == [(VOLUME, "fine_tune")]
    assert _fired(last_cut=T, new_labels=500, fine_tune_labels=99) == []


def test_performance_needs_its_floor_crossed_on_a_minimum_sample():
    assert _fired(last_cut=T, review_precision=0.1, reviews=9) == []
    assert _fired(last_cut=T, review_precision=0.1, reviews=10) == [(PERFORMANCE, "fine_tune")]
    assert _fired(last_cut=T, chargeback_recall=0.4, chargebacks=10) == [(PERFORMANCE, "fine_tune")]
    assert _fired(last_cut=T, chargeback_recall=0.5, chargebacks=50) == []
    reason = firings(Observed(now=T, last_cut=T, chargeback_recall=0.25, chargebacks=12), RULES)[
        0
    ].reason
    assert reason == "recall 0.25 < 0.50 over 12 fraud chargebacks"


def test_drift_asks_for_a_full_retrain_naming_the_worst_input():
    (firing,) = firings(
        Observed(
            now=T,
            last_cut=T,
            psi={"score": 0.25, "card_payments_1h": 0.9, "x": 0.1},
            drift_sample=100,
        ),
        RULES,
    )
    assert (firing.trigger, firing.kind) == (DRIFT, "full")
    assert firing.reason == "PSI of card_payments_1h 0.90 > 0.20 (and 1 more)"
    # Over too few payments, the index says nothing.
    assert _fired(last_cut=T, psi={"score": 0.9}, drift_sample=99) == []


def test_what_hurts_comes_first_and_a_trigger_that_started_waits_its_cooldown():
    busy = {
        "last_cut": T - timedelta(days=2),
        "new_labels": 500,
        "review_precision": 0.05,
        "reviews": 40,
        "psi": {"score": 0.5},
        "drift_sample": 1000,
    }
    assert _fired(**busy) == [
        (PERFORMANCE, "fine_tune"), (DRIFT, "full"), (TIME, "full"), (VOLUME, "fine_tune"),
    ]  # fmt: skip
    recently = {PERFORMANCE: T - timedelta(hours=5), DRIFT: T - timedelta(hours=6)}
    assert _fired(**busy, last_started=recently) == [
        (DRIFT, "full"), (TIME, "full"), (VOLUME, "fine_tune"),
    ]  # fmt: skip


# The drift index.


def test_psi_is_near_zero_for_the_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(5)
    ref = reference(rng.normal(size=20_000))
    assert len(ref["edges"]) == 9
    assert psi(ref, rng.normal(size=5_000)) < 0.02
    assert psi(ref, rng.normal(loc=1.0, size=5_000)) > 0.2
    assert psi(ref, []) is None


def test_a_feature_that_stops_being_served_drifts():
    values = np.r_[np.arange(1000.0), [np.nan] * 10]
    ref = reference(values)
    assert ref["shares"][-1] == pytest.approx(10 / 1010)
    assert psi(ref, [np.nan] * 100) > 1
    assert drift_report({"a": ref, "b": ref}, {"a": values, "b": [np.nan] * 50, "c": [1.0]}) == {
        "b": pytest.approx(psi(ref, [np.nan] * 50), abs=1e-4),
        "a": 0.0,
    }


def test_a_feature_of_few_values_gets_few_bins():
    ref = reference([0.0] * 80 + [1.0] * 20)
    assert ref["edges"] == [0.0, 1.0]
    assert ref["shares"] == [0.8, 0.2, 0.0, 0.0]


# The check, on the database.


def _scores(at: datetime, n: int, *, decision: str = "approve", score: float = 0.01):
    return [score_make(decision=decision, score=score, scored_at=at) for _ in range(n)]


@pytest.fixture
def champion(app_store, settings):
    """A champion trained on logs a week old (its data ends 6 days ago)."""
    settings.ML_FULL_ROUNDS = 20
    logs_with_labels(app_store, 400)
    run, _ = training_request(kind="full")
    model = training_run(request_key=run.request_key).model
    model_promote(version=model.version)
    return model


@pytest.mark.django_db
def test_nothing_fires_before_a_payment_was_scored():
    assert triggers_check() == []


@pytest.mark.django_db
def test_a_check_records_each_firing_and_starts_one_training(champion, settings):
    settings.ML_TRIGGER_LABELS = 3
    settings.ML_TRIGGER_MIN_SAMPLE = 3
    settings.ML_TRIGGER_MAX_PSI = 100.0  # drift is tested below
    now = datetime.now(UTC)
    # The champion's training cut its data 30 hours ago.
    TrainingRun.objects.update(as_of=now - timedelta(hours=30))
    # Three payments the scorer approved, proved fraud by chargebacks today: recall 0.
    missed = _scores(now - timedelta(hours=30), 3)
    for i, score in enumerate(missed):
        label_record(
            payment_id=score.payment_id,
            evidence=Evidence(
                CHARGEBACK, True, "10.4", now - timedelta(hours=i + 1), str(uuid.uuid4())
            ),
        )
    _scores(now, 1)  # the stream's clock: now
    runs_before = TrainingRun.objects.count()

    fired = triggers_check()

    assert [(f.trigger, f.kind, f.started) for f in fired] == [
        (PERFORMANCE, "fine_tune", True), (TIME, "full", False), (VOLUME, "fine_tune", False),
    ]  # fmt: skip
    run = fired[0].run
    assert (run.requested_kind, run.reason, run.status) == ("fine_tune", PERFORMANCE, "queued")
    assert {f.run_id for f in fired} == {run.pk}
    assert TrainingRun.objects.count() == runs_before + 1
    assert fired[0].figures["chargeback_recall"] == 0.0
    assert fired[0].reason == "recall 0.00 < 0.50 over 3 fraud chargebacks"
    assert fired[2].figures["new_labels"] == 3
    assert TriggerFiring.objects.count() == 3

    # Checked again at once: the training asked for is running; the time and volume triggers
    # read its cut, and performance waits its cooldown.
    assert triggers_check() == []


@pytest.mark.django_db
def test_a_shifted_score_distribution_fires_the_drift_trigger(champion, settings):
    settings.ML_TRIGGER_MAX_PSI = 0.2
    settings.ML_DRIFT_MIN_SAMPLE = 200
    settings.ML_TRIGGER_EVERY_HOURS = 1000.0
    now = datetime.now(UTC)
    _scores(now, 200, decision="decline", score=0.99)

    (fired,) = triggers_check()

    assert (fired.trigger, fired.kind, fired.started) == (DRIFT, "full", True)
    assert fired.figures["psi"]["score"] > 1
    # The worker's metrics tell the same PSI.
    assert process_sample("ml_drift_psi", feature="score") == fired.figures["psi"]["score"]
    assert fired.figures["payments"] == 200
    assert fired.reason.startswith("PSI of score ")
    assert FraudScore.objects.count() == 200


@pytest.mark.django_db
def test_review_precision_is_read_from_the_analysts_decisions_in_the_window(settings):
    from ml.selectors import review_precision

    now = datetime.now(UTC)
    for i, fraud in enumerate([True, False, False, False]):
        label_record(
            payment_id=f"p{i}",
            evidence=Evidence(REVIEW, fraud, "x", now - timedelta(hours=i), str(uuid.uuid4())),
        )
    label_record(
        payment_id="old",
        evidence=Evidence(REVIEW, True, "x", now - timedelta(days=2), str(uuid.uuid4())),
    )
    assert review_precision(since=now - timedelta(hours=24), until=now) == (0.25, 4)


@pytest.mark.django_db
def test_a_full_retrain_since_the_champion_leaves_the_fine_tunes_count(champion, settings):
    settings.ML_TRIGGER_LABELS = 3
    settings.ML_TRIGGER_MIN_SAMPLE = 1000  # no performance or time firing
    settings.ML_TRIGGER_MAX_PSI = 100.0
    now = datetime.now(UTC)
    TrainingRun.objects.update(as_of=now - timedelta(hours=30))  # the champion's cut
    for i, score in enumerate(_scores(now - timedelta(hours=40), 3)):
        label_record(
            payment_id=score.payment_id,
            evidence=Evidence(
                REVIEW, False, "approved", now - timedelta(hours=i + 2), str(uuid.uuid4())
            ),
        )
    # A full retrain (rejected, say) cut after those labels: the champion still never saw them.
    TrainingRun.objects.create(
        request_key="drift-later", requested_kind="full", kind="full", reason=DRIFT,
        feature_service="fraud_scoring_v1", as_of=now - timedelta(hours=1), status="registered",
    )  # fmt: skip
    _scores(now, 1)

    fired = triggers_check()

    assert [(f.trigger, f.kind, f.started) for f in fired] == [(VOLUME, "fine_tune", True)]
    assert fired[0].figures["new_labels"] == 3
    assert fired[0].reason == "3 labels the champion has not learned from"


@pytest.mark.django_db
def test_the_thresholds_set_from_the_console_are_in_force_and_kept(settings):
    from ml.models import TriggerConfig
    from ml.services.triggers import (
        TriggerSettingsInvalid,
        trigger_settings,
        trigger_settings_set,
    )

    settings.ML_TRIGGER_LABELS = 1000
    assert trigger_settings().labels == 1000  # the settings', until someone sets them
    values = {
        "every_hours": "12", "labels": "250", "window_hours": "6", "min_precision": "0.2",
        "min_recall": "0.6", "min_sample": "40", "max_psi": "0.25", "cooldown_hours": "1.5",
    }  # fmt: skip

    with pytest.raises(TriggerSettingsInvalid) as refused:
        trigger_settings_set(values={**values, "labels": "many", "min_recall": "2"}, by="mona")
    assert refused.value.errors == {
        "labels": "a fine-tune every (new labels): a whole number, please",
        "min_recall": "chargeback recall floor: at least 0 and at most 1",
    }
    assert not TriggerConfig.objects.exists()

    row = trigger_settings_set(values=values, by="mona")
    rules = trigger_settings()
    assert (rules.labels, rules.every, rules.cooldown) == (
        250, timedelta(hours=12), timedelta(hours=1.5)
    )  # fmt: skip
    assert (rules.min_recall, rules.max_psi) == (0.6, 0.25)
    assert row.changed_by == "mona"
