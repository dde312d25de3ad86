"""A bootstrap training set shared by the ml tests (built once per session: ~15 s)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from features.repo import apply_repo
from features.store import FeatureConfig
from ml.datasets import bootstrap_dataset
from tests.features.stores import feature_config
from tests.ml.history import MATURITY, simulated_history


@dataclass(frozen=True)
class Bootstrapped:
    config: FeatureConfig
    history: Path
    truth: Path
    frame: pd.DataFrame


@pytest.fixture(scope="session")
def bootstrapped(tmp_path_factory) -> Bootstrapped:
    root = tmp_path_factory.mktemp("ml-bootstrap")
    history = simulated_history(root / "history")
    config = feature_config(root)
    apply_repo(config)
    frame = bootstrap_dataset(config, history, maturity=MATURITY)
    return Bootstrapped(config, history, root / "ground_truth.parquet", frame)


@pytest.fixture(autouse=True)
def models_dir(settings, tmp_path) -> Path:
    """The model registry's files, this test's own."""
    settings.ML_MODELS_DIR = tmp_path / "models"
    return settings.ML_MODELS_DIR
