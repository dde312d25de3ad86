"""Model artifacts are verified before use: the digest before LightGBM parses a byte, then the
objective and the feature names; never pickle."""

from __future__ import annotations

import hashlib
import pickle

import lightgbm as lgb
import pytest

from features.definitions import FRAUD_SCORING_V1
from features.training import service_features
from fraud import artifacts
from fraud.artifacts import ModelRefused, booster_load, service_feature_names
from tests.fraud.factories import FEATURES, SERVICE, model_train


def _load(model, **overrides):
    arguments = {
        "artifact_path": str(model.path),
        "sha256": model.sha256,
        "feature_names": model.feature_names,
        "feature_service": SERVICE,
        **overrides,
    }
    return booster_load(**arguments)


def test_the_service_serves_stored_then_on_demand_features():
    names = service_feature_names(SERVICE)
    assert names[:3] == ["card_payments_10m", "card_payments_1h", "card_payments_24h"]
    assert names[-5:] == [
        "amount_to_rider_avg_fare",
        "fare_per_km_to_zone_median",
        "hour_of_day",
        "is_new_card",
        "minutes_since_signup",
    ]
    stored = service_features(FRAUD_SCORING_V1)
    assert names == [n for n, _ in stored] + list(FRAUD_SCORING_V1.on_demand)
    assert len(set(names)) == len(names)


def test_a_verified_model_loads_with_its_feature_names(tmp_path):
    model = model_train(tmp_path)
    booster = _load(model)
    assert booster.feature_name() == FEATURES


def test_a_tampered_file_is_refused_before_lightgbm_parses_it(tmp_path, monkeypatch):
    model = model_train(tmp_path)
    text = model.path.read_text()
    model.path.write_text(text.replace("learning_rate: 0.2", "learning_rate: 0.3", 1))
    parsed = []
    monkeypatch.setattr(artifacts.lgb, "Booster", lambda **kw: parsed.append(kw))

    with pytest.raises(ModelRefused, match="sha256 mismatch") as refused:
        _load(model)

    digest = hashlib.sha256(model.path.read_bytes()).hexdigest()
    assert str(refused.value) == (
        f"sha256 mismatch for {model.path}: file has {digest}, deployment says {model.sha256}"
    )
    assert parsed == []


def test_a_pickle_is_never_loaded_even_with_a_matching_digest(tmp_path):
    booster = lgb.Booster(model_str=model_train(tmp_path).path.read_text())
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(booster))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()

    with pytest.raises(ModelRefused, match="is not a LightGBM text model"):
        booster_load(
            artifact_path=str(path),
            sha256=digest,
            feature_names=FEATURES,
            feature_service=SERVICE,
        )


def test_feature_names_other_than_the_deployments_are_refused(tmp_path):
    model = model_train(tmp_path)
    swapped = [FEATURES[1], FEATURES[0], *FEATURES[2:]]
    with pytest.raises(ModelRefused, match="has features"):
        _load(model, feature_names=swapped)


def test_a_feature_the_service_does_not_serve_is_refused(tmp_path):
    names = [*FEATURES[:-1], "card_colour"]
    model = model_train(tmp_path, feature_names=names)
    with pytest.raises(ModelRefused) as refused:
        _load(model)
    assert str(refused.value) == "features not served by fraud_scoring_v1: card_colour"
    with pytest.raises(ModelRefused, match="unknown feature service 'fraud_scoring_v9'"):
        _load(model_train(tmp_path / "ok"), feature_service="fraud_scoring_v9")


def test_a_model_that_does_not_give_a_probability_is_refused(tmp_path):
    model = model_train(tmp_path, objective="regression")
    with pytest.raises(ModelRefused, match="has objective 'regression'"):
        _load(model)


def test_a_missing_file_is_refused_with_its_path(tmp_path):
    model = model_train(tmp_path)
    model.path.unlink()
    with pytest.raises(ModelRefused, match=f"cannot read {model.path}"):
        _load(model)
