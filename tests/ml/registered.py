"""Small registered models for the deployment tests (bandits, canaries): their quality is not
what those tests are about."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import lightgbm as lgb
import numpy as np

from ml.models import ModelVersion
from ml.services import model_register
from ml.train import model_features

NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)
FEATURES = model_features()


def model_registered(
    seed: int, *, status: str = "approved", service: str = "fraud_scoring_v1"
) -> str:
    """Register a small model of ``service`` (its quality is not what these tests are about)
    as ``status``."""
    features = model_features(service)
    rng = np.random.default_rng(seed)
    x = rng.random((300, len(features)))
    y = (x[:, 0] + rng.random(300) * 0.3 > 0.9).astype(int)
    booster = lgb.train(
        {"objective": "binary", "verbosity": -1, "num_threads": 1, "seed": seed},
        lgb.Dataset(x, label=y, feature_name=features),
        num_boost_round=3,
    )
    model = model_register(
        booster=booster,
        feature_service=service,
        params={},
        metrics={},
        data_start=NOW - timedelta(days=5),
        data_end=NOW - timedelta(days=1),
        training_rows=300,
        source=ModelVersion.Source.LOGS,
    )
    ModelVersion.objects.filter(pk=model.pk).update(status=status)
    return model.version
