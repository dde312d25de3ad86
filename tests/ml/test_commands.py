"""The ml commands and the retraining task: bootstrap a champion from simulated history, write
the log-based training set, promote a version, retrain from logs warm-started from the champion."""

from __future__ import annotations

import io
from datetime import timedelta

import pandas as pd
import pyarrow.parquet as pq
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command

from fraud.models import Deployment
from ml.models import ModelVersion, TrainingRun
from ml.registry import model_load
from ml.services import model_promote, model_register
from ml.tasks import train_from_logs
from ml.train import TrainParams, model_features, train_model
from tests.ml.logs import logs_with_labels

# Bootstraps training sets and trains: fails alone if it grows (tests/memory_ceiling.py).
pytestmark = [pytest.mark.django_db, pytest.mark.memory_ceiling(2)]


def _bootstrap(*extra: str) -> str:
    out = io.StringIO()
    call_command(
        "bootstrap",
        "--days=4",
        "--riders=300",
        "--drivers=40",
        "--seed=11",
        "--label-delay-days=0.25",
        "--maturity-days=1",
        "--rounds=100",
        *extra,
        stdout=out,
    )
    return out.getvalue()


@pytest.mark.slow
def test_bootstrap_trains_registers_and_deploys_a_champion_once():
    output = _bootstrap("--if-no-champion")

    model = ModelVersion.objects.get()
    champion = Deployment.objects.get(role="champion")
    assert champion.model_version == model.version
    assert (champion.sha256, champion.artifact_path) == (model.sha256, model.artifact_path)
    assert (champion.review_threshold, champion.decline_threshold) == (0.5, 0.9)
    assert model.source == "bootstrap: simulator history"
    assert model.parent is None
    assert model.code_version
    assert model.data_start < model.data_end
    # 4 simulated days, the last one left out to let labels come in.
    assert timedelta(days=2) < model.data_end - model.data_start <= timedelta(days=3)
    # Refit on every row after its twin was judged on the holdout.
    assert model.metrics["refit"] is True
    assert model.training_rows == model.metrics["train"]["rows"] + model.metrics["rows"]
    assert model.metrics["train"]["rows"] > 0
    assert model.metrics["label_sources"]["chargeback"] > 0
    assert model.params["num_boost_round"] == 100
    assert f"bootstrap: authorization model {model.version} (champion)" in output

    again = _bootstrap("--if-no-champion")

    assert "the authorization champion is deployed already" in again
    assert ModelVersion.objects.count() == 1


@pytest.mark.slow
def test_bootstrap_and_the_scorer_follow_the_authorizations_feature_service(settings):
    from fraud.scorer import ScorerSettings

    settings.FRAUD_SERVICE = "fraud_scoring_v2"
    output = _bootstrap("--if-no-champion")

    model = ModelVersion.objects.get()
    assert model.feature_service == "fraud_scoring_v2"
    assert model.status == "approved"  # gated on its own service's golden set
    assert {"payment_amount_cents", "amount_zscore_card_30d"} <= set(model.feature_names)
    assert Deployment.objects.get(role="champion").checkpoint == "authorization"
    assert f"bootstrap: authorization model {model.version} (champion)" in output
    assert ScorerSettings.from_settings().service == "fraud_scoring_v2"
    settings.FRAUD_SERVICE = "fraud_capture_v1"
    with pytest.raises(ImproperlyConfigured, match="use an authorization feature service"):
        ScorerSettings.from_settings()


@pytest.mark.slow
def test_bootstrap_of_the_capture_checkpoint_deploys_its_own_champion_beside_the_first():
    _bootstrap("--if-no-champion")
    output = _bootstrap("--if-no-champion", "--checkpoint=capture")

    first, capture = ModelVersion.objects.order_by("id")
    assert (first.feature_service, capture.feature_service) == (
        "fraud_scoring_v1", "fraud_capture_v1",
    )  # fmt: skip
    champions = dict(
        Deployment.objects.filter(role="champion").values_list("checkpoint", "model_version")
    )
    assert champions == {"authorization": first.version, "capture": capture.version}
    assert f"bootstrap: capture model {capture.version} (champion)" in output
    # It learned from the driver: the trips' drivers are known at the capture.
    assert "driver_trips_24h" in capture.feature_names
    profile = capture.metrics["dataset"]
    assert "driver_trips_24h" not in profile["constant"]
    assert _bootstrap("--if-no-champion", "--checkpoint=capture").count("deployed already") == 1


def test_promote_command_deploys_and_refuses_unknown_versions(bootstrapped):
    result = train_model(
        bootstrapped.frame, features=model_features(), params=TrainParams(num_boost_round=5)
    )
    model = model_register(
        booster=result.booster,
        feature_service="fraud_scoring_v1",
        params=result.params,
        metrics=result.metrics,
        data_start=result.data_start,
        data_end=result.data_end,
        training_rows=result.training_rows,
        source=ModelVersion.Source.BOOTSTRAP,
    )

    call_command("model_promote", model.version, "--role=canary", "--canary-share=0.1")

    deployment = Deployment.objects.get()
    assert (deployment.model_version, deployment.role, deployment.canary_share) == (
        model.version,
        "canary",
        0.1,
    )
    with pytest.raises(CommandError, match="no model version 'nope'"):
        call_command("model_promote", "nope")


def test_training_set_from_logs_writes_the_logged_features_with_labels(app_store, tmp_path):
    logs_with_labels(app_store)
    out = tmp_path / "sets" / "logged.parquet"
    stdout = io.StringIO()

    call_command("training_set_from_logs", "--out", str(out), "--maturity-days=3", stdout=stdout)

    frame = pd.read_parquet(out)
    assert len(frame) == 400
    assert int(frame["label"].sum()) == 80
    assert frame.loc[frame["payment_id"] == "p7", "card_payments_1h"].item() == 2
    assert stdout.getvalue().strip() == f"wrote 400 rows (80 labelled fraud) to {out}"
    assert pq.read_schema(out).field("card_payments_1h").type == "int64"


def test_retraining_from_logs_warm_starts_from_the_champion(app_store, bootstrapped):
    parent_result = train_model(
        bootstrapped.frame, features=model_features(), params=TrainParams(num_boost_round=30)
    )
    parent = model_register(
        booster=parent_result.booster,
        feature_service="fraud_scoring_v1",
        params=parent_result.params,
        metrics=parent_result.metrics,
        data_start=parent_result.data_start,
        data_end=parent_result.data_end,
        training_rows=parent_result.training_rows,
        source=ModelVersion.Source.BOOTSTRAP,
    )
    model_promote(version=parent.version)
    logs_with_labels(app_store)

    version = train_from_logs()

    child = ModelVersion.objects.get(version=version)
    assert child.parent == parent
    assert child.source == "logs+labels"
    assert child.training_rows == 400  # every row (its twin trained on the 320 before the holdout)
    assert child.metrics["label_sources"] == {"assumed_negative": 320, "chargeback": 80}
    assert child.metrics["auc_roc"] == 1.0  # velocity separates the synthetic fraud exactly
    assert Deployment.objects.get(role="champion").model_version == parent.version  # not deployed
    assert model_load(version).num_trees() == 30 + 50
    # The same logs and labels train the same model: the same version.
    assert train_from_logs() == version


def test_the_train_command_trains_gates_and_says_so(app_store, settings):
    settings.ML_FULL_ROUNDS = 30
    logs_with_labels(app_store)
    out = io.StringIO()

    call_command("train", "--kind=fine_tune", "--key=by-hand-1", stdout=out)

    run = TrainingRun.objects.get(request_key="by-hand-1")
    lines = out.getvalue().splitlines()
    assert lines[0] == (
        f"full training by-hand-1: {run.model.version} registered, approved "
        f"(400 rows, 80 fraud; {run.cpu_seconds:.1f} s CPU)"
    )
    assert lines[1] == "  no champion to fine-tune: a full retrain instead"
    assert lines[2:] == [
        "  training_data: passed",
        "  smoke: passed",
        "  behaviour: passed",
        "  backtest: passed",
    ]
    # The same key again: nothing new is trained.
    call_command("train", "--key=by-hand-1", stdout=io.StringIO())
    assert ModelVersion.objects.count() == 1


def test_the_train_command_refuses_while_a_training_runs(app_store):
    from ml.services import training_request

    training_request(kind="full", queue=False)
    with pytest.raises(CommandError, match=r"a training is queued already .*: one at a time"):
        call_command("train", stdout=io.StringIO())
