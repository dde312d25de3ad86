"""What models trained on the standard fraud features learned, asked as a fraud analyst would:
the same payments again, one thing changed, and the score moves the way the world says it
should. Models trained here as the bootstrap trains them, on a few simulated days
(``tests/ml/history.py``): an authorization model on ``fraud_scoring_v2``, a capture model on
``fraud_capture_v1``.

- An amount five times the card's mean over the week raises the authorization score.
- A driver whose recent trips were charged back as fraud raises the capture score.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.definitions import FEATURE_SERVICES, FRAUD_CAPTURE_V1, FRAUD_SCORING_V2
from features.ondemand import INPUTS, on_demand
from features.repo import apply_repo
from ml.datasets import bootstrap_dataset
from ml.train import TrainParams, model_features, train_model
from tests.features.stores import feature_config
from tests.ml.history import MATURITY, simulated_history

pytestmark = [pytest.mark.slow, pytest.mark.memory_ceiling(2)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, tuple[pd.DataFrame, object]]:
    root = tmp_path_factory.mktemp("behaviour")
    history = simulated_history(root / "history")
    found = {}
    for service in (FRAUD_SCORING_V2.name, FRAUD_CAPTURE_V1.name):
        config = feature_config(root / service)
        apply_repo(config)
        frame = bootstrap_dataset(config, history, maturity=MATURITY, service=service)
        result = train_model(
            frame,
            features=model_features(service),
            time_column="event_timestamp",
            params=TrainParams(num_boost_round=200, seed=3),
        )
        found[service] = (frame, result.booster)
    return found


def _scores(booster, frame: pd.DataFrame, service: str) -> np.ndarray:
    names = model_features(service)
    matrix = frame[names].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    return booster.predict(matrix, num_threads=1)


def _with_amount(rows: pd.DataFrame, amounts: pd.Series, service: str) -> pd.DataFrame:
    """``rows`` as if each payment had been for ``amounts``: the card's windows that count
    the payment itself move by the difference, and every on-demand feature of the service
    reading the amount is computed again from the request, as the scorer computes it."""
    changed = rows.copy()
    delta = amounts - rows["payment_amount_cents"]
    for window in ("card_amount_cents_1h", "card_amount_cents_24h"):
        changed[window] = rows[window] + delta
    names = FEATURE_SERVICES[service].on_demand
    for i, (index, row) in enumerate(changed.iterrows()):
        request = {
            "amount_cents": int(amounts.iloc[i]),
            "distance_km": row.get("distance_km"),
            "occurred_at": row["event_timestamp"].to_pydatetime(),
        }
        values = {k: (None if pd.isna(v) else v) for k, v in row.items()}
        for name, value in on_demand(request, values, names).items():
            changed.at[index, name] = value
    return changed


def test_an_amount_five_times_the_cards_weekly_mean_raises_the_authorization_score(trained):
    service = FRAUD_SCORING_V2.name
    frame, booster = trained[service]
    # Legitimate payments of cards with a week of history: their usual fare is known.
    usual = frame[(frame["label"] == 0) & frame["card_amount_mean_7d"].notna()].head(400)
    assert len(usual) >= 100
    assert set(INPUTS["amount_zscore_card_7d"]) <= set(frame.columns)
    before = _scores(booster, usual, service)
    five_times = (usual["card_amount_mean_7d"] * 5).round()
    after = _scores(booster, _with_amount(usual, five_times, service), service)
    raised = after > before
    assert raised.mean() >= 0.6, f"raised for {raised.mean():.0%} of payments"
    assert np.median(after / before) > 1.2
    assert after.mean() > before.mean()


def test_a_driver_whose_recent_trips_were_charged_back_raises_the_capture_score(trained):
    service = FRAUD_CAPTURE_V1.name
    frame, booster = trained[service]
    # Legitimate fares of drivers with no chargeback on their recent trips.
    clean = frame[
        (frame["label"] == 0)
        & frame["driver_risk_payments_7d"].fillna(0).gt(0)
        & frame["driver_risk_chargebacks_7d"].fillna(0).eq(0)
        & frame["driver_chargebacks_24h"].fillna(0).eq(0)
    ].head(400)
    assert len(clean) >= 100
    before = _scores(booster, clean, service)
    charged = clean.copy()
    # Three fraud chargebacks came in on the driver's trips yesterday.
    for name in ("driver_chargebacks_24h", "driver_confirmed_fraud_24h"):
        charged[name] = 3
    for days in ("1d", "7d", "30d"):
        charged[f"driver_risk_chargebacks_{days}"] = 3
        trips = charged[f"driver_risk_payments_{days}"].fillna(0).clip(lower=3)
        charged[f"driver_risk_payments_{days}"] = trips
        charged[f"driver_fraud_share_{days}"] = 3 / trips
    after = _scores(booster, charged, service)
    raised = after > before
    assert raised.mean() >= 0.6, f"raised for {raised.mean():.0%} of fares"
    assert after.mean() > before.mean()
