"""Models and scoring inputs for the scorer's tests: a tiny LightGBM model trained here on
synthetic rows of the feature service's columns (real training lives in ``ml``), written as a
text model and deployed through ``fraud.services.deployment_set``."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import lightgbm as lgb
import numpy as np

from events.contracts import PaymentAuthorized, Place, RiderContext
from fraud.artifacts import service_feature_names

SERVICE = "fraud_scoring_v1"
FEATURES = service_feature_names(SERVICE)
# The synthetic fraud: a card used four times or more in ten minutes.
VELOCITY = "card_payments_10m"


@dataclass(frozen=True)
class ModelFile:
    path: Path
    sha256: str
    feature_names: list[str]


def model_train(
    directory: Path,
    *,
    name: str = "model",
    feature_names: list[str] | None = None,
    signal: str = VELOCITY,
    seed: int = 0,
    objective: str = "binary",
) -> ModelFile:
    """Train a small model where fraud is ``signal`` >= 4 (other columns are noise or missing)
    and write it as a LightGBM text model under ``directory``."""
    names = list(feature_names or FEATURES)
    rng = np.random.default_rng(seed)
    rows = 4000
    matrix = rng.normal(size=(rows, len(names)))
    matrix[rng.random(matrix.shape) < 0.3] = np.nan
    column = names.index(signal)
    matrix[:, column] = rng.poisson(1.0, size=rows) + (rng.random(rows) < 0.1) * 6
    label = (matrix[:, column] >= 4).astype(int)
    booster = lgb.train(
        {
            "objective": objective,
            "num_leaves": 8,
            "min_data_in_leaf": 20,
            "learning_rate": 0.2,
            "num_threads": 1,
            "deterministic": True,
            "seed": seed,
            "verbose": -1,
        },
        lgb.Dataset(matrix, label, feature_name=names),
        num_boost_round=30,
    )
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.txt"
    path.write_text(booster.model_to_string())
    return ModelFile(path, hashlib.sha256(path.read_bytes()).hexdigest(), names)


def model_deploy(
    directory: Path,
    *,
    version: str = "m-champion",
    role: str = "champion",
    review: float = 0.5,
    decline: float = 0.9,
    canary_share: float = 0.0,
    seed: int = 0,
    service: str = SERVICE,
    signal: str = VELOCITY,
):
    """Train a model of ``service`` where fraud is ``signal`` >= 4 (``model_train``) and deploy
    it; return the ``Deployment``."""
    from fraud.services import deployment_set

    model = model_train(
        directory,
        name=version,
        seed=seed,
        feature_names=service_feature_names(service),
        signal=signal,
    )
    return deployment_set(
        model_version=version,
        artifact_path=str(model.path),
        sha256=model.sha256,
        feature_service=service,
        feature_names=model.feature_names,
        role=role,
        review_threshold=review,
        decline_threshold=decline,
        canary_share=canary_share,
    )


def payment(
    *,
    card_id: str = "card-1",
    rider_id: str = "rider-1",
    amount_cents: int = 1250,
    device_id: str = "dev-1",
    occurred_at: datetime | None = None,
) -> PaymentAuthorized:
    """Return a ``payments.authorized.v1`` event, made a minute after ``NOW`` unless told:
    the instant the tests' feature rows are written at, so they are within every view's ttl."""
    return PaymentAuthorized(
        payment_id=f"pay-{uuid.uuid4().hex[:12]}",
        trip_id=f"trip-{uuid.uuid4().hex[:12]}",
        rider_id=rider_id,
        card_id=card_id,
        card_fingerprint=f"fp-{card_id}",
        amount_cents=amount_cents,
        currency="EUR",
        pickup_zone="Z-1-1",
        context=RiderContext(device_id=device_id, ip="127.0.0.1", lat=52.37, lng=4.89),
        distance_km=3.0,
        card_brand="Visa",
        card_last4="4242",
        pickup=Place(lat=52.33, lng=4.845, zone="Z-1-1"),
        dropoff=Place(lat=52.39, lng=4.935, zone="Z-4-4"),
        occurred_at=occurred_at or NOW + timedelta(minutes=1),
    )


NOW = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
