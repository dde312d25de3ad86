"""The offline gates (``ml.gates``, ``ml.services.model_gate``): a sound candidate passes each;
one trained on shuffled labels, one whose input was zeroed and one whose inputs are in the wrong
order are each rejected by a named gate, recorded with the reason, and never deployed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from fraud.models import Deployment
from ml.golden import golden_read
from ml.models import ModelVersion
from ml.services import ModelRejected, model_gate, model_promote, model_register
from ml.train import (
    TrainParams,
    dataset_profile,
    model_features,
    train_model,
    training_reference,
)
from tests.ml.logs import vector

pytestmark = pytest.mark.django_db
FEATURES = model_features()
T = datetime(2026, 3, 1, tzinfo=UTC)


def _frame(rows: int = 1500) -> pd.DataFrame:
    """Payments as logged (tests.ml.logs), every fifth fraud, spread over five days."""
    records = []
    for i in range(rows):
        fraud = i % 5 == 0
        served = vector(fraud, i)
        values = {**served.values, **served.on_demand}
        records.append(
            {
                **{name: values.get(name) for name in FEATURES},
                "label": int(fraud),
                "request_time": T + timedelta(minutes=5 * i),
                "card_id": f"c{i % 300}",
            }
        )
    frame = pd.DataFrame(records)
    for name in FEATURES:
        frame[name] = pd.array(frame[name], dtype="Float64")
    return frame


def _register(frame: pd.DataFrame, features=FEATURES, *, seed: int = 7):
    result = train_model(
        frame,
        features=features,
        time_column="request_time",
        params=TrainParams(num_boost_round=40, seed=seed),
    )
    result.metrics["reference"] = training_reference(result.booster, frame, features)
    model = model_register(
        booster=result.booster,
        feature_service="fraud_scoring_v1",
        params=result.params,
        metrics=result.metrics,
        data_start=result.data_start,
        data_end=result.data_end,
        training_rows=result.training_rows,
        source=ModelVersion.Source.LOGS,
    )
    return model, result


def _gated(
    frame: pd.DataFrame, window: pd.DataFrame, features=FEATURES, *, seed: int = 7
) -> ModelVersion:
    model, result = _register(frame, features, seed=seed)
    return model_gate(
        model=model,
        booster=result.booster,
        window=window,
        constant=dataset_profile(frame, features, time_column="request_time")["constant"],
        time_column="request_time",
    )


@pytest.fixture
def data():
    frame = _frame()
    # The candidates' backtest: payments after the ones they train on, truly labelled.
    later = _frame(600)
    later["request_time"] = later["request_time"] + timedelta(days=10)
    return frame, later


@pytest.fixture
def champion(data):
    frame, later = data
    model = _gated(frame, later)
    assert model.status == "approved", model.gates
    model_promote(version=model.version)
    return model


def _gate(model: ModelVersion, name: str) -> dict:
    return next(g for g in model.gates if g["gate"] == name)


def test_a_sound_candidate_passes_every_gate(champion, data):
    frame, later = data
    candidate = _gated(frame, later, seed=8)  # another model than the champion
    assert candidate.pk != champion.pk

    assert candidate.status == "approved"
    assert [g["gate"] for g in candidate.gates] == [
        "training_data", "smoke", "behaviour", "backtest",
    ]  # fmt: skip
    assert all(g["passed"] for g in candidate.gates)
    backtest = _gate(candidate, "backtest")["figures"]
    assert backtest["candidate"]["average_precision"] == pytest.approx(1.0)
    assert backtest["champion"]["card_precision_at_k"] is not None
    assert _gate(candidate, "behaviour")["figures"]["burst_mean_change"] > 0
    smoke = _gate(candidate, "smoke")["figures"]
    assert (smoke["rows"], smoke["finite"]) == (len(golden_read()), True)


def test_a_model_trained_on_shuffled_labels_is_rejected_by_the_backtest(champion, data):
    frame, later = data
    shuffled = frame.copy()
    shuffled["label"] = np.random.default_rng(3).permutation(shuffled["label"].to_numpy())

    candidate = _gated(shuffled, later)

    assert candidate.status == "rejected"
    backtest = _gate(candidate, "backtest")
    assert backtest["passed"] is False
    assert backtest["reason"].startswith("average precision ")
    assert "against the champion's 1.000" in backtest["reason"]
    with pytest.raises(ModelRejected, match="backtest: average precision"):
        model_promote(version=candidate.version)
    assert Deployment.objects.get(role="champion").model_version == champion.version


def test_a_model_whose_input_was_zeroed_is_rejected_by_the_training_data_gate(champion, data):
    frame, later = data
    zeroed = frame.copy()
    zeroed["card_payments_1h"] = pd.array([0] * len(zeroed), dtype="Float64")

    candidate = _gated(zeroed, later)

    assert candidate.status == "rejected"
    gate = _gate(candidate, "training_data")
    assert gate["passed"] is False
    assert gate["figures"]["varied_for_the_champion"] == ["card_payments_1h"]
    assert gate["reason"].startswith("card_payments_1h never varied in the training set")


def test_a_model_with_its_inputs_in_the_wrong_order_is_rejected_by_the_smoke_test(champion, data):
    frame, later = data
    swapped = [FEATURES[1], FEATURES[0], *FEATURES[2:]]

    candidate = _gated(frame, later, features=swapped)

    assert candidate.status == "rejected"
    smoke = _gate(candidate, "smoke")
    assert smoke["passed"] is False
    assert smoke["reason"] == "the model's inputs differ from the feature service's from position 0"
    assert _gate(candidate, "behaviour")["reason"].startswith("not run")
    assert Deployment.objects.count() == 1


def test_without_a_champion_the_backtest_asks_for_better_than_chance(data):
    frame, later = data
    shuffled = frame.copy()
    shuffled["label"] = np.random.default_rng(5).permutation(shuffled["label"].to_numpy())

    candidate = _gated(shuffled, later)

    backtest = _gate(candidate, "backtest")
    assert backtest["passed"] is False
    assert "too close to chance (the fraud rate 0.200; at least 0.400 needed)" in backtest["reason"]
    assert "champion" not in backtest["figures"]


def test_a_gated_model_is_not_gated_again(champion, data):
    _, later = data
    model = ModelVersion.objects.get(pk=champion.pk)
    again = model_gate(model=model, booster=None, window=later, constant=[], time_column="x")
    assert (again.status, again.gates) == ("approved", champion.gates)


def test_the_backtest_leaves_out_the_payments_the_champion_trained_on(champion, data):
    frame, later = data
    # Its window: the champion's own newest training rows, then 600 it never saw.
    seen = frame.tail(300)
    candidate = _gated(frame, pd.concat([seen, later], ignore_index=True), seed=8)

    backtest = _gate(candidate, "backtest")
    assert backtest["figures"]["rows"] == len(later)
    assert backtest["figures"]["after"] == champion.data_end.isoformat()
    assert backtest["passed"] is True

    only_seen = _gated(frame, seen, seed=9)
    backtest = _gate(only_seen, "backtest")
    assert backtest["figures"]["rows"] == 0
    assert backtest["reason"] == (
        "only 0 fraud labels in the window after the champion's training data: not judged"
    )


def test_the_backtest_judges_the_twin_the_candidate_was_refit_from(champion, data):
    # A candidate refit from a twin trained on shuffled labels: the recipe failed on the
    # holdout, whatever the refit model scores there (it trained on it).
    frame, later = data
    model, result = _register(frame, seed=10)
    shuffled = frame.copy()
    shuffled["label"] = np.random.default_rng(3).permutation(shuffled["label"].to_numpy())
    _, bad = _register(shuffled, seed=10)

    gated = model_gate(
        model=model,
        booster=result.booster,
        window=later,
        constant=[],
        time_column="request_time",
        twin=bad.twin,
    )

    assert gated.status == "rejected"
    assert _gate(gated, "backtest")["reason"].startswith("average precision ")
    assert _gate(gated, "smoke")["passed"] is True
