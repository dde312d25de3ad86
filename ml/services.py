"""Writes of the ml room: train a model from a dataset, register it, deploy it."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

import pandas as pd

from features.repo import apply_repo
from features.store import FeatureConfig, feature_store
from ml.datasets import bootstrap_dataset, logged_dataset
from ml.models import ModelVersion
from ml.registry import model_load, model_promote, model_register
from ml.selectors import champion_get
from ml.train import DEFAULT_THRESHOLDS, TrainParams, model_features, train_model

SERVICE = "fraud_scoring_v1"


def _label_counts(frame: pd.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in frame["label_source"].value_counts().sort_index().items()}


def model_bootstrap(
    *,
    history: Path,
    work_dir: Path,
    maturity: timedelta = timedelta(days=3),
    snapshot_every: timedelta = timedelta(hours=1),
    params: TrainParams | None = None,
    thresholds: Mapping[str, float] = DEFAULT_THRESHOLDS,
    promote: bool = True,
) -> ModelVersion:
    """Train the first model on the simulator history at ``history`` and register it; deploy
    it as champion when ``promote``. Return the model version.

    The features come from a scratch feature store under ``work_dir`` (its own Feast project,
    registry and offline files), so the history, another world than the live one, never mixes
    with the live store. Idempotent: the same history and parameters train the same bytes,
    hence the same version. Side effects: the model file, its registry row, the champion
    deployment; nothing is published.
    """
    config = FeatureConfig(
        project=f"bootstrap{uuid.uuid4().hex[:8]}",
        registry_url=f"sqlite:///{work_dir / 'feast-registry.sqlite3'}",
        online="sqlite",
        data_dir=work_dir / "features",
    )
    apply_repo(config)
    try:
        frame = bootstrap_dataset(config, history, maturity=maturity, snapshot_every=snapshot_every)
    finally:
        feature_store(config).teardown()
    result = train_model(
        frame,
        features=model_features(SERVICE),
        time_column="event_timestamp",
        params=params,
        thresholds=thresholds,
    )
    result.metrics["label_sources"] = _label_counts(frame)
    model = model_register(
        booster=result.booster,
        feature_service=SERVICE,
        params=result.params,
        metrics=result.metrics,
        data_start=result.data_start,
        data_end=result.data_end,
        training_rows=result.training_rows,
        source=ModelVersion.Source.BOOTSTRAP,
    )
    if promote:
        model_promote(
            version=model.version,
            review_threshold=thresholds["review"],
            decline_threshold=thresholds["decline"],
        )
    return model


def model_train_from_logs(
    *,
    config: FeatureConfig,
    parent: ModelVersion | None = None,
    maturity: timedelta = timedelta(days=3),
    params: TrainParams | None = None,
    thresholds: Mapping[str, float] = DEFAULT_THRESHOLDS,
) -> ModelVersion:
    """Train a model on the log-and-wait training set (``ml.datasets.logged_dataset``: logged
    features JOIN labels) and register it; return the model version. Not deployed.

    Warm-start from ``parent`` (default: the champion) when it reads the same features:
    ``params.num_boost_round`` trees are added to its own. Idempotent like
    ``model_register``: the same logs, labels and parent give the same version.
    """
    frame = logged_dataset(config, maturity=maturity)
    parent = parent or champion_get()
    features = model_features(SERVICE)
    init_model = None
    if parent is not None and list(parent.feature_names) == features:
        init_model = model_load(parent.version)
    result = train_model(
        frame,
        features=features,
        time_column="request_time",
        params=params or TrainParams(num_boost_round=50),
        init_model=init_model,
        thresholds=thresholds,
    )
    result.metrics["label_sources"] = _label_counts(frame)
    return model_register(
        booster=result.booster,
        feature_service=SERVICE,
        params=result.params,
        metrics=result.metrics,
        data_start=result.data_start,
        data_end=result.data_end,
        training_rows=result.training_rows,
        source=ModelVersion.Source.LOGS,
        parent=parent if init_model is not None else None,
    )
