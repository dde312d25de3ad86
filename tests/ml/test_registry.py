"""The model registry: text models with a verified sha256, lineage, idempotent registration,
promotion into the scorer's deployments; a tampered file is never loaded nor deployed."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraud.artifacts import ModelRefused
from fraud.models import Deployment
from ml.models import ModelVersion
from ml.registry import code_version, model_load
from ml.services import model_promote, model_register
from ml.train import TrainParams, model_features, train_model

pytestmark = pytest.mark.django_db
FEATURES = model_features()
START = datetime(2025, 3, 1, tzinfo=UTC)


def _frame(seed: int, rows: int = 400) -> pd.DataFrame:
    """Payments whose fraud shows in card velocity."""
    rng = np.random.default_rng(seed)
    label = rng.random(rows) < 0.2
    frame = pd.DataFrame(
        {name: pd.array(rng.integers(0, 5, rows), dtype="Int64") for name in FEATURES}
    )
    frame["card_payments_1h"] = pd.array(
        np.where(label, rng.integers(6, 30, rows), rng.integers(0, 4, rows)), dtype="Int64"
    )
    frame["label"] = label.astype(int)
    frame["event_timestamp"] = [START + timedelta(minutes=i) for i in range(rows)]
    return frame


def _register(seed: int = 1, parent: ModelVersion | None = None) -> ModelVersion:
    result = train_model(_frame(seed), features=FEATURES, params=TrainParams(num_boost_round=20))
    return model_register(
        booster=result.booster,
        feature_service="fraud_scoring_v1",
        params=result.params,
        metrics=result.metrics,
        data_start=result.data_start,
        data_end=result.data_end,
        training_rows=result.training_rows,
        source=ModelVersion.Source.LOGS if parent else ModelVersion.Source.BOOTSTRAP,
        parent=parent,
    )


def test_a_registered_model_is_a_text_file_with_its_sha256_metrics_and_lineage(models_dir):
    model = _register()

    path = Path(model.artifact_path)
    data = path.read_bytes()
    assert path == models_dir / f"{model.version}.txt"
    assert data.startswith(b"tree\nversion=v4\n")  # LightGBM's text format, never pickle
    assert model.sha256 == hashlib.sha256(data).hexdigest()
    assert model.version.startswith("fraud-lgbm-")
    assert model.version.endswith(f"-{model.sha256[:8]}")
    assert model.feature_names == FEATURES
    assert model.feature_service == "fraud_scoring_v1"
    assert model.source == "bootstrap: simulator history"
    assert model.parent is None
    assert model.code_version == code_version() != ""
    assert model.training_rows == 400  # refit on every row after its twin's holdout
    assert (model.data_start, model.data_end) == (START, START + timedelta(minutes=399))
    assert model.params["num_boost_round"] == 20
    assert model.params["num_threads"] == 1
    assert set(model.metrics) >= {"auc_roc", "auc_pr", "at_thresholds", "rows", "positive_rate"}
    assert [p.name for p in models_dir.iterdir()] == [path.name]  # no temporary file left


def test_registering_the_same_model_again_returns_the_same_version(models_dir):
    first = _register(seed=1)
    again = _register(seed=1)

    assert again.pk == first.pk
    assert ModelVersion.objects.count() == 1
    assert len(list(models_dir.iterdir())) == 1


def test_a_loaded_model_predicts_as_the_trained_one():
    frame = _frame(5)
    trained = train_model(frame, features=FEATURES, params=TrainParams(num_boost_round=20))
    model = model_register(
        booster=trained.booster,
        feature_service="fraud_scoring_v1",
        params=trained.params,
        metrics=trained.metrics,
        data_start=trained.data_start,
        data_end=trained.data_end,
        training_rows=trained.training_rows,
        source=ModelVersion.Source.BOOTSTRAP,
    )
    matrix = frame[FEATURES].to_numpy(dtype=float, na_value=np.nan)

    loaded = model_load(model.version)

    np.testing.assert_array_equal(
        loaded.predict(matrix, num_threads=1), trained.booster.predict(matrix, num_threads=1)
    )


def test_a_tampered_model_file_is_refused_and_never_deployed():
    model = _register()
    path = Path(model.artifact_path)
    text = path.read_text()
    # A changed leaf value: still a valid LightGBM model, but not the one registered.
    tampered = text.replace("leaf_value=", "leaf_value=9", 1)
    assert tampered != text
    path.write_text(tampered)

    with pytest.raises(ModelRefused, match="sha256 mismatch"):
        model_load(model.version)
    with pytest.raises(ModelRefused, match="sha256 mismatch"):
        model_promote(version=model.version)
    assert Deployment.objects.count() == 0


def test_promotion_deploys_the_champion_and_retires_the_previous_one():
    first = _register(seed=1)
    second = _register(seed=2, parent=first)

    model_promote(version=first.version, review_threshold=0.4, decline_threshold=0.8)
    deployed = model_promote(version=second.version, review_threshold=0.3, decline_threshold=0.7)
    shadow = model_promote(version=first.version, role="shadow")

    assert second.parent == first
    assert second.source == "logs+labels"
    assert (deployed.role, deployed.review_threshold, deployed.decline_threshold) == (
        "champion",
        0.3,
        0.7,
    )
    assert (deployed.artifact_path, deployed.sha256) == (second.artifact_path, second.sha256)
    assert deployed.feature_names == FEATURES
    assert shadow.role == "shadow"
    assert dict(Deployment.objects.values_list("model_version", "role")) == {
        first.version: "shadow",
        second.version: "champion",
    }


def test_a_deployment_without_thresholds_takes_its_own_then_the_champions():
    first, second, third = (_register(seed=s) for s in (1, 2, 3))
    # The thresholds its gates matched to the champion's alert volume: recorded, not deployed.
    ModelVersion.objects.filter(pk=second.pk).update(review_threshold=0.21, decline_threshold=0.6)

    model_promote(version=first.version, review_threshold=0.4, decline_threshold=0.8)
    shadow = model_promote(version=third.version, role="shadow")
    canary = model_promote(version=second.version, role="canary", canary_share=0.1)
    # A canary made champion keeps the thresholds it was judged with.
    Deployment.objects.filter(model_version=second.version).update(review_threshold=0.25)
    champion = model_promote(version=second.version)
    # Told others: those.
    told = model_promote(version=third.version, role="shadow", review_threshold=0.33)

    assert (shadow.review_threshold, shadow.decline_threshold) == (0.4, 0.8)
    assert (canary.review_threshold, canary.decline_threshold) == (0.4, 0.8)
    assert (champion.review_threshold, champion.decline_threshold) == (0.25, 0.8)
    assert (told.review_threshold, told.decline_threshold) == (0.33, 0.8)
    # The previous champion, kept as a shadow, keeps its own.
    kept = Deployment.objects.get(model_version=first.version)
    assert (kept.role, kept.review_threshold, kept.decline_threshold) == ("shadow", 0.4, 0.8)
