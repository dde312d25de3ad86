"""Training runs (``ml.services.training_request`` / ``training_run``): a full retrain on a
window of logged vectors JOIN labels, a fine-tune of a replica of the champion on the newest
rows, bounded chains, one run per request key, one training at a time, failures recorded.
And the pure parts (``ml.train``): the training set's profile, the newest rows, the chain's
bounds, progress."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from django.utils import timezone

from fraud.models import Deployment
from ml.models import ModelVersion, TrainingRun
from ml.registry import model_load
from ml.services import model_promote, training_request, training_run
from ml.train import (
    ChainBounds,
    TrainParams,
    dataset_profile,
    fine_tune_batch,
    fine_tune_refusal,
    model_features,
    newest_rows,
    train_model,
)
from tests.ml.logs import logs_with_labels
from tests.scrape import process_sample

T = datetime(2026, 3, 1, tzinfo=UTC)


# Pure.


def test_the_profile_says_what_the_training_set_is():
    frame = pd.DataFrame(
        {
            "request_time": [T + timedelta(minutes=i) for i in range(4)],
            "label": [1, 0, 0, 1],
            "label_source": ["chargeback", "assumed_negative", "review", "review"],
            "a": [1.0, None, 3.0, None],
            "b": [5, 5, 5, 5],
        }
    )
    profile = dataset_profile(frame, ["a", "b"], time_column="request_time")
    assert profile == {
        "rows": 4,
        "positives": 2,
        "positive_rate": 0.5,
        "label_sources": {"assumed_negative": 1, "chargeback": 1, "review": 2},
        "positives_by_source": {"assumed_negative": 0, "chargeback": 1, "review": 1},
        "start": T.isoformat(),
        "end": (T + timedelta(minutes=3)).isoformat(),
        "null_share": {"a": 0.5},
        "constant": ["b"],
    }


def test_a_fine_tune_batch_is_the_newest_rows_and_older_ones_drawn_at_random():
    frame = pd.DataFrame({"t": [T + timedelta(minutes=i) for i in range(100)], "x": range(100)})

    batch = fine_tune_batch(frame, 10, replay=20, time_column="t")

    xs = batch["x"].tolist()
    assert xs == sorted(xs)  # in time order
    assert xs[-10:] == list(range(90, 100))
    assert len(set(xs[:-10])) == 20
    assert max(xs[:-10]) < 90
    again = fine_tune_batch(frame, 10, replay=20, time_column="t")
    assert again["x"].tolist() == xs  # seeded: a redelivered run trains on the same rows
    assert fine_tune_batch(frame, 10, replay=0, time_column="t")["x"].tolist() == xs[-10:]
    assert len(fine_tune_batch(frame, 90, replay=50, time_column="t")) == 100


def test_the_newest_rows_are_the_latest_by_time_in_time_order():
    frame = pd.DataFrame({"t": [T + timedelta(minutes=m) for m in (5, 1, 9, 3)], "x": [0, 1, 2, 3]})
    assert newest_rows(frame, 2, time_column="t")["x"].tolist() == [0, 2]
    assert newest_rows(frame, 10, time_column="t")["x"].tolist() == [1, 3, 0, 2]


def test_a_chain_of_fine_tunes_is_bounded_in_trees_and_age():
    bounds = ChainBounds(max_trees=100, max_age=timedelta(days=7))
    ok = {"chain_start": T, "as_of": T + timedelta(days=6), "bounds": bounds}
    assert fine_tune_refusal(parent_trees=80, added_trees=20, **ok) is None
    assert "101 trees, more than 100" in fine_tune_refusal(parent_trees=81, added_trees=20, **ok)
    late = {**ok, "as_of": T + timedelta(days=7, seconds=1)}
    assert "older than 7 days" in fine_tune_refusal(parent_trees=10, added_trees=20, **late)


def test_training_reports_its_progress_up_to_done():
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {"t": [T + timedelta(minutes=i) for i in range(200)], "x": rng.normal(size=200)}
    )
    frame["label"] = (frame["x"] > 1).astype(int)
    seen: list[float] = []
    train_model(
        frame,
        features=["x"],
        time_column="t",
        params=TrainParams(num_boost_round=30, min_data_in_leaf=5),
        progress=seen.append,
    )
    # Two trainings (the twin, then the refit on every row), each a half of the way.
    assert seen == pytest.approx([i / 20 for i in range(1, 21)])


# The runs, on the database and the app's feature store.


@pytest.fixture
def logs(app_store, settings):
    """400 payments logged a week ago (80 charged back as fraud), 200 logged a day ago (their
    chargebacks not known yet, not mature: left out), chargeback maturity 3 days."""
    settings.ML_CHARGEBACK_MATURITY_DAYS = 3.0
    settings.ML_FULL_ROUNDS = 40
    settings.ML_FINE_TUNE_ROWS = 200
    settings.ML_FINE_TUNE_ROUNDS = 10
    settings.ML_FINE_TUNE_REPLAY_ROWS = 100
    now = timezone.now()
    logs_with_labels(app_store, 400, start=now - timedelta(days=7))
    logs_with_labels(app_store, 200, start=now - timedelta(days=1), prefix="young")
    return app_store


def _full_champion() -> ModelVersion:
    run, _ = training_request(kind="full")
    run = training_run(request_key=run.request_key)
    model_promote(version=run.model.version)
    return run.model


@pytest.mark.django_db
def test_a_full_retrain_registers_a_model_with_its_training_set_profile(logs):
    run, created = training_request(kind="full")
    assert (created, run.status) == (True, "queued")
    timed = {"checkpoint": "authorization", "kind": "full", "outcome": "registered"}
    before = process_sample("ml_training_seconds_count", **timed) or 0

    run = training_run(request_key=run.request_key)

    assert (run.status, run.stage, run.percent, run.attempts, run.kind) == (
        "registered", "registered", 100, 1, "full",
    )  # fmt: skip
    model = run.model
    assert (model.kind, model.parent, model.source) == ("full", None, "logs+labels")
    assert model_load(model.version).num_trees() == 40
    # The young unlabelled payments are not in it; every fifth old one is fraud.
    assert run.dataset["label_sources"] == {"assumed_negative": 320, "chargeback": 80}
    assert process_sample("ml_training_seconds_count", **timed) == before + 1
    assert model.metrics["dataset"] == run.dataset
    assert run.dataset["null_share"]["amount_to_rider_avg_fare"] == 1.0
    assert run.cpu_seconds > 0
    assert run.finished_at >= run.started_at
    assert not Deployment.objects.exists()  # registered, not deployed

    # The same request again: the same run, nothing trained.
    again = training_run(request_key=run.request_key)
    assert (again.model_id, again.attempts) == (model.pk, 1)


@pytest.mark.django_db
def test_the_capture_checkpoints_model_retrains_from_its_own_log(app_store, settings):
    settings.ML_CHARGEBACK_MATURITY_DAYS = 3.0
    settings.ML_FULL_ROUNDS = 40
    now = timezone.now()
    logs_with_labels(app_store, 300, start=now - timedelta(days=7), service="fraud_capture_v1")
    # The authorization's log beside it, which the capture's model must not read.
    logs_with_labels(app_store, 100, start=now - timedelta(days=7), prefix="auth")

    run, created = training_request(kind="full", checkpoint="capture")
    assert (created, run.feature_service) == (True, "fraud_capture_v1")
    # One training at a time per checkpoint: the authorization's may run beside it.
    other, created = training_request(kind="full")
    assert (created, other.feature_service) == (True, "fraud_scoring_v1")
    run = training_run(request_key=run.request_key)

    model = run.model
    assert model.feature_service == "fraud_capture_v1"
    assert model.feature_names == model_features("fraud_capture_v1")
    assert run.dataset["rows"] == 300
    assert run.dataset["label_sources"] == {"assumed_negative": 240, "chargeback": 60}
    # Gated on its own checkpoint's golden set.
    assert model.status in ("approved", "rejected")
    assert {g["gate"] for g in model.gates} >= {"smoke"}


@pytest.mark.django_db
def test_a_retrain_is_judged_on_the_payments_its_champion_never_learned_from(logs, settings):
    settings.ML_CHARGEBACK_MATURITY_DAYS = 1.5  # the fixture's young payments stay out
    now = timezone.now()
    first, _ = training_request(kind="full", as_of=now - timedelta(days=2.5))
    champion = training_run(request_key=first.request_key).model
    model_promote(version=champion.version)
    # 50 payments logged after the champion was trained, matured and charged back since.
    logs_with_labels(logs, 50, start=now - timedelta(days=2.2), prefix="later")

    run, _ = training_request(kind="full")
    model = training_run(request_key=run.request_key).model

    # Not the newest fifth of 450 rows (90, 40 of them the champion's): the 50 it never saw.
    assert champion.training_rows == 400
    assert model.metrics["rows"] == 50
    assert model.metrics["positives"] == 10
    assert datetime.fromisoformat(model.metrics["holdout_start"]) > first.as_of
    assert model.metrics["train"]["rows"] == 400
    assert model.training_rows == 450
    backtest = next(g for g in model.gates if g["gate"] == "backtest")
    assert backtest["figures"]["rows"] == 50


@pytest.mark.django_db
def test_a_fine_tune_trains_a_replica_of_the_champion_on_the_newest_rows(logs):
    champion = _full_champion()
    serving = model_load(champion.version)

    run, _ = training_request(kind="fine_tune")
    run = training_run(request_key=run.request_key)

    child = run.model
    assert (run.kind, run.note, child.kind, child.parent, run.parent) == (
        "fine_tune", "", "fine_tune", champion, champion,
    )  # fmt: skip
    assert model_load(child.version).num_trees() == 40 + 10
    assert run.dataset["rows"] == 300  # the newest 200 matured rows and 100 older ones
    assert child.training_rows == 300  # refit on every row; its twin on the 240 before the holdout
    assert child.metrics["train"]["rows"] == 240
    # The champion's file is untouched: the fine-tune trained a copy.
    assert model_load(champion.version).model_to_string() == serving.model_to_string()
    assert Deployment.objects.get(role="champion").model_version == champion.version


@pytest.mark.django_db
def test_a_fine_tune_without_a_champion_or_past_its_chain_runs_full(logs, settings):
    run, _ = training_request(kind="fine_tune")
    run = training_run(request_key=run.request_key)
    assert (run.requested_kind, run.kind, run.model.kind) == ("fine_tune", "full", "full")
    assert run.note == "no champion to fine-tune: a full retrain instead"

    model_promote(version=run.model.version)
    settings.ML_FINE_TUNE_MAX_TREES = 45
    run, _ = training_request(kind="fine_tune")
    run = training_run(request_key=run.request_key)
    assert (run.kind, run.parent) == ("full", None)
    assert run.note == "the chain would have 50 trees, more than 45: a full retrain instead"


@pytest.mark.django_db
def test_one_training_at_a_time_and_one_run_per_request_key(logs, settings):
    first, created = training_request(kind="full", request_key="nightly-2026-03-01")
    assert created
    # Another request while it waits: the waiting one answers, nothing new is queued.
    other, created = training_request(kind="fine_tune", reason="volume")
    assert (other.pk, created) == (first.pk, False)
    assert training_request(request_key="nightly-2026-03-01") == (first, False)

    # A run not heard from for longer than the stale limit is taken for dead.
    TrainingRun.objects.filter(pk=first.pk).update(
        updated_at=timezone.now() - timedelta(seconds=settings.ML_TRAINING_STALE_SECONDS + 1)
    )
    second, created = training_request(kind="fine_tune", reason="volume")
    assert created
    assert second.pk != first.pk
    assert TrainingRun.objects.count() == 2


@pytest.mark.django_db
def test_a_failed_training_is_recorded_with_its_error(app_store):
    run, _ = training_request(kind="full")  # nothing logged: no rows to train on
    with pytest.raises(ValueError, match="has 0 rows, 0 of them fraud: too few to train"):
        training_run(request_key=run.request_key)
    run.refresh_from_db()
    assert (run.status, run.stage, run.model) == ("failed", "failed", None)
    assert run.error.startswith("ValueError: the training set has 0 rows")
    assert not ModelVersion.objects.exists()


@pytest.mark.django_db
def test_with_promote_approved_an_approved_candidate_becomes_champion(logs, settings):
    champion = _full_champion()
    Deployment.objects.filter(role="champion").update(review_threshold=0.6)
    logs_with_labels(logs, 50, start=timezone.now() - timedelta(days=4), prefix="later")
    settings.ML_PROMOTE_APPROVED = True

    run, _ = training_request(kind="full")
    run = training_run(request_key=run.request_key)

    assert run.model.status == "approved", run.model.gates
    deployed = Deployment.objects.get(role="champion")
    assert deployed.model_version == run.model.version != champion.version
    assert deployed.review_threshold == 0.6  # the champion's thresholds carry over
    assert run.note.endswith(f"promoted to champion (replacing {champion.version})")
    # Run again (a redelivery): the same champion, the note said once.
    again = training_run(request_key=run.request_key)
    assert again.note == run.note
    assert Deployment.objects.get(role="champion").model_version == run.model.version


@pytest.mark.django_db
def test_without_promote_approved_nothing_is_deployed(logs):
    champion = _full_champion()
    logs_with_labels(logs, 50, start=timezone.now() - timedelta(days=4), prefix="later")
    run, _ = training_request(kind="full")
    run = training_run(request_key=run.request_key)
    assert run.model.status == "approved"
    assert run.model != champion
    assert Deployment.objects.get(role="champion").model_version == champion.version
    assert "promoted" not in run.note
