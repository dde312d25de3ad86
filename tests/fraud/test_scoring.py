"""Scoring a batch: model inputs in the deployment's column order, the champion or a canary
decides, shadows only score, reasons for flagged rows, defaults and review when degraded; and
the behaviour of a model trained on velocity."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime

import lightgbm as lgb
import numpy as np
import pytest

from features.serving import ServedVector
from fraud.decisions import card_bucket
from fraud.scoring import (
    UNSERVED,
    LoadedModel,
    ModelSet,
    feature_matrix,
    payment_request,
    score_batch,
    unserved_vector,
    vector_from_record,
    vector_record,
)
from tests.fraud.factories import FEATURES, SERVICE, VELOCITY, model_train, payment

STORED = FEATURES[:-5]


def _model(tmp_path, version="champion-1", role="champion", share=0.0, seed=0) -> LoadedModel:
    model = model_train(tmp_path / version, seed=seed)
    return LoadedModel(
        model_version=version,
        role=role,
        booster=lgb.Booster(model_str=model.path.read_text()),
        feature_names=tuple(model.feature_names),
        feature_service=SERVICE,
        review_threshold=0.5,
        decline_threshold=0.9,
        canary_share=share,
    )


def _vector(**values) -> ServedVector:
    stored = {n: values.get(n) for n in STORED}
    on_demand = {n: values.get(n) for n in FEATURES[-5:]}
    return ServedVector(
        values=stored,
        statuses={n: "PRESENT" if stored[n] is not None else "NOT_FOUND" for n in STORED},
        event_timestamps=dict.fromkeys(STORED),
        on_demand=on_demand,
    )


def _request(card_id="card-1", amount_cents=1250) -> dict:
    return {
        "card_id": card_id,
        "rider_id": "rider-1",
        "pickup_zone": "Z-1-1",
        "amount_cents": amount_cents,
        "occurred_at": "2025-03-14T09:26:53+00:00",
    }


@pytest.fixture(scope="module")
def champion(tmp_path_factory) -> LoadedModel:
    return _model(tmp_path_factory.mktemp("models"))


def test_the_matrix_follows_the_model_columns_and_missing_is_nan():
    vector = _vector(card_payments_10m=3, hour_of_day=9)
    matrix = feature_matrix([vector], ["hour_of_day", "card_payments_10m", "card_payments_1h"])
    assert matrix.shape == (1, 3)
    assert matrix[0, :2].tolist() == [9.0, 3.0]
    assert math.isnan(matrix[0, 2])


def test_a_velocity_burst_raises_the_score_and_is_the_first_reason(champion):
    calm, burst = _vector(**{VELOCITY: 1}), _vector(**{VELOCITY: 9})
    low, high = score_batch(
        ModelSet(champion=champion),
        requests=[_request(), _request()],
        vectors=[calm, burst],
        degraded_review_cents=5000,
    )
    assert high.score > 0.9 > 0.1 > low.score
    assert (low.decision, high.decision) == ("approve", "decline")
    assert low.reasons == []  # approvals are not explained by default
    assert high.reasons[0]["feature"] == VELOCITY
    assert high.reasons[0]["text"] == "9 payments on this card in the last 10 minutes"
    assert high.model_version == "champion-1"
    assert high.role == "champion"
    assert high.degraded_features == []


def test_an_innocuous_change_does_not_move_the_score(champion):
    # The request's device id, payment id and rider differ; the served features are equal.
    base = _vector(**{VELOCITY: 2, "card_distinct_devices_24h": 1})
    first = dict(_request(), device_id="dev-aaaa", payment_id="p1")
    second = dict(_request(), device_id="device-zz-99", payment_id="p2", rider_id="rider-2")
    a, b = score_batch(
        ModelSet(champion=champion),
        requests=[first, second],
        vectors=[base, base],
        degraded_review_cents=5000,
    )
    assert a.score == b.score


def test_explain_all_gives_approvals_reasons_too(champion):
    lenient = replace(champion, review_threshold=1.0, decline_threshold=1.0)
    outcomes = [
        score_batch(
            ModelSet(champion=lenient),
            requests=[_request()],
            vectors=[_vector(**{VELOCITY: 9})],
            degraded_review_cents=5000,
            explain_all=explain_all,
        )[0]
        for explain_all in (False, True)
    ]
    assert [o.decision for o in outcomes] == ["approve", "approve"]
    assert outcomes[0].reasons == []
    assert outcomes[1].reasons[0]["text"] == "9 payments on this card in the last 10 minutes"


def test_a_canary_decides_for_its_share_of_cards_and_shadows_decide_nothing(tmp_path, champion):
    canary = _model(tmp_path, "canary-1", role="canary", share=0.5, seed=1)
    shadow = _model(tmp_path, "shadow-1", role="shadow", seed=2)
    cards = [f"card-{i}" for i in range(6)]
    models = ModelSet(champion=champion, canaries=(canary,), shadows=(shadow,))
    scored = score_batch(
        models,
        requests=[_request(card) for card in cards],
        vectors=[_vector(**{VELOCITY: i}) for i in range(6)],
        degraded_review_cents=5000,
    )
    expected = ["canary-1" if card_bucket(c) < 0.5 else "champion-1" for c in cards]
    assert [s.model_version for s in scored] == expected
    assert {s.role for s in scored} == {"canary", "champion"}
    assert [[version for version, *_ in s.shadows] for s in scored] == [["shadow-1"]] * 6
    assert all(s.model_us > 0 and s.shadows[0][3] > 0 for s in scored)
    # A shadow's score is its own model's, computed on the same row.
    direct = shadow.booster.predict(
        feature_matrix([_vector(**{VELOCITY: 5})], shadow.feature_names), num_threads=1
    )
    assert scored[5].shadows[0][1] == float(direct[0])


class _Broken:
    """A booster double that fails as a faulty artifact would: raising, or giving NaN."""

    def __init__(self, raises: bool):
        self.raises = raises

    def predict(self, matrix, num_threads=1, pred_contrib=False):
        if self.raises:
            raise RuntimeError("corrupt tree")
        return np.full(len(matrix), np.nan)


@pytest.mark.parametrize("raises", [True, False], ids=["raising", "nan"])
def test_a_failing_canary_leaves_its_cards_to_the_champion_and_is_counted(
    tmp_path, champion, raises
):
    canary = replace(
        _model(tmp_path, "canary-1", role="canary", share=0.5, seed=1), booster=_Broken(raises)
    )
    shadow = replace(_model(tmp_path, "shadow-1", role="shadow", seed=2), booster=_Broken(raises))
    cards = [f"card-{i}" for i in range(6)]
    requests = [_request(card) for card in cards]
    vectors = [_vector(**{VELOCITY: 3 * i}) for i in range(6)]

    scored = score_batch(
        ModelSet(champion=champion, canaries=(canary,), shadows=(shadow,)),
        requests=requests,
        vectors=vectors,
        degraded_review_cents=5000,
    )
    alone = score_batch(
        ModelSet(champion=champion), requests=requests, vectors=vectors, degraded_review_cents=5000
    )

    theirs = [card_bucket(c) < 0.5 for c in cards]
    assert any(theirs)
    assert not all(theirs)
    assert [s.failed_model for s in scored] == ["canary-1" if t else "" for t in theirs]
    # Every payment decided, explained and scored exactly as by the champion alone.
    assert [(s.model_version, s.score, s.decision, s.reasons) for s in scored] == [
        (s.model_version, s.score, s.decision, s.reasons) for s in alone
    ]
    assert all(s.shadows == [] for s in scored)  # a failing shadow is left out, nothing else


def test_a_failing_champion_fails_the_batch(tmp_path, champion):
    with pytest.raises(RuntimeError, match="corrupt tree"):
        score_batch(
            ModelSet(champion=replace(champion, booster=_Broken(True))),
            requests=[_request()],
            vectors=[_vector()],
            degraded_review_cents=0,
        )


def test_an_unserved_vector_scores_on_defaults_marked_degraded(champion):
    requests = [_request(amount_cents=5000), _request(amount_cents=4999)]
    vectors = [unserved_vector(r, SERVICE) for r in requests]
    assert set(vectors[0].statuses.values()) == {UNSERVED}
    assert vectors[0].on_demand["hour_of_day"] == 9  # from the request alone
    high, low = score_batch(
        ModelSet(champion=champion),
        requests=requests,
        vectors=vectors,
        degraded_review_cents=5000,
    )
    assert high.score == low.score < 0.5
    assert (high.decision, low.decision) == ("review", "approve")
    # is_new_card is unknown because card_added_at was not served: degraded too.
    assert vectors[0].on_demand["is_new_card"] is None
    degraded = [n for n in FEATURES if n != "hour_of_day"]
    assert high.degraded_features == degraded
    assert low.degraded_features == degraded


def test_a_served_vector_round_trips_through_its_compact_record():
    at = datetime(2025, 3, 14, 9, 26, 53, 123456, tzinfo=UTC)
    values = {n: None for n in STORED} | {"card_payments_10m": 3, "card_added_at": 1741944413.5}
    statuses = dict.fromkeys(STORED, "NOT_FOUND") | {
        "card_payments_10m": "PRESENT",
        "card_added_at": "OUTSIDE_MAX_AGE",
    }
    stamps = dict.fromkeys(STORED) | {"card_payments_10m": at, "card_added_at": at}
    on_demand = dict.fromkeys(FEATURES[-5:]) | {"hour_of_day": 9, "amount_to_rider_avg_fare": 1 / 3}
    vector = ServedVector(values, statuses, stamps, on_demand)  # fmt: skip

    record = vector_record(vector, service=SERVICE, request=_request(), request_time=at)

    assert vector_from_record(record) == (vector, at)
    assert record["values"][:2] == [3, None]
    assert record["statuses"][:2] == [1, 3]  # PRESENT, NOT_FOUND
    assert record["event_timestamps"][0] == 1741944413123456
    assert record["request"] == _request()
    nan = ServedVector(values | {"card_payments_10m": math.nan}, statuses, stamps, on_demand)
    assert vector_record(nan, service=SERVICE, request={}, request_time=at)["values"][0] is None


def test_a_payment_request_keeps_what_scoring_and_logging_read():
    event = payment(card_id="card-9", amount_cents=4200)
    assert payment_request(event) == {
        "payment_id": event.payment_id,
        "card_id": "card-9",
        "rider_id": "rider-1",
        "driver_id": None,
        "pickup_zone": "Z-1-1",
        "amount_cents": 4200,
        "distance_km": 3.0,
        "occurred_at": event.occurred_at.isoformat(),
        "context": {"device_id": "dev-1", "ip": "127.0.0.1"},
    }


def test_an_empty_batch_scores_nothing_and_no_champion_is_an_error(champion):
    assert score_batch(ModelSet(champion=champion), requests=[], vectors=[],
                       degraded_review_cents=0) == []  # fmt: skip
    with pytest.raises(ValueError, match="no champion"):
        score_batch(ModelSet(champion=None), requests=[], vectors=[], degraded_review_cents=0)


def test_predictions_use_the_threads_asked_for(champion, monkeypatch):
    seen = []
    original = lgb.Booster.predict

    def spy(self, data, *args, **kwargs):
        seen.append(kwargs.get("num_threads"))
        return original(self, data, *args, **kwargs)

    monkeypatch.setattr(lgb.Booster, "predict", spy)
    score_batch(
        ModelSet(champion=champion),
        requests=[_request()],
        vectors=[_vector(**{VELOCITY: 9})],
        degraded_review_cents=0,
        threads=1,
    )
    assert seen == [1, 1]  # the prediction and the explanation
    assert np.isfinite(seen).all()
