"""On-demand features: pure functions of the payment request and the stored values."""

from __future__ import annotations

from datetime import UTC, datetime

from features.definitions import FEATURE_SERVICES, FRAUD_SCORING_V1, FRAUD_SCORING_V2
from features.ondemand import DESCRIPTIONS, DTYPES, INPUTS, on_demand, request_seconds

AT = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
T = AT.timestamp()
REQUEST = {
    "card_id": "c1",
    "rider_id": "r1",
    "pickup_zone": "Z-1-1",
    "amount_cents": 3000,
    "distance_km": 4.0,
    "occurred_at": AT.isoformat(),
}
VALUES = {
    "rider_avg_fare_cents_30d": 1200.0,
    "zone_median_fare_per_km_30d": 250.0,
    "card_added_at": T - 3 * 86_400,
    "rider_signed_up_at": T - 90 * 60,
}


SPENDING = {
    "card_amount_cents_24h": 4000,
    "card_payments_24h": 2,
    "card_amount_mean_7d": 1000.0,
    "card_amount_std_7d": 500.0,
    "card_amount_mean_30d": 1200.0,
    "card_amount_std_30d": 40.0,  # below the floor of one unit: 100 cents
    "rider_amount_mean_30d": 3000.0,
    "rider_amount_std_30d": 250.0,
}


def test_every_on_demand_feature_from_a_full_request():
    assert on_demand(REQUEST, {**VALUES, **SPENDING}) == {
        "amount_to_rider_avg_fare": 2.5,
        "fare_per_km_to_zone_median": 3.0,
        "hour_of_day": 14,
        "is_new_card": 0,
        "minutes_since_signup": 90.0,
        "payment_amount_cents": 3000,
        "amount_to_card_mean_24h": 1.5,
        "amount_zscore_card_7d": 4.0,
        "amount_zscore_card_30d": 18.0,
        "amount_zscore_rider_30d": 0.0,
    }


def test_a_service_gets_its_own_on_demand_features_in_its_order():
    for service in FEATURE_SERVICES.values():
        assert tuple(on_demand(REQUEST, VALUES, service.on_demand)) == service.on_demand
    assert FRAUD_SCORING_V2.on_demand[: len(FRAUD_SCORING_V1.on_demand)] == (
        FRAUD_SCORING_V1.on_demand
    )


def test_the_names_descriptions_types_and_inputs_agree():
    assert tuple(on_demand(REQUEST, VALUES)) == tuple(DESCRIPTIONS) == tuple(DTYPES)
    assert tuple(INPUTS) == tuple(DTYPES)
    assert all("{value}" in text for text in DESCRIPTIONS.values())
    stored = {
        f.name for service in FEATURE_SERVICES.values() for v in service.views for f in v.features
    }
    assert {name for inputs in INPUTS.values() for name in inputs} <= stored


def test_missing_or_zero_inputs_give_none():
    request = {**REQUEST, "distance_km": None}
    assert on_demand(request, {}, FRAUD_SCORING_V1.on_demand) == {
        "amount_to_rider_avg_fare": None,
        "fare_per_km_to_zone_median": None,
        "hour_of_day": 14,
        "is_new_card": None,  # a card never seen added is unknown, not new
        "minutes_since_signup": None,
    }
    zeros = {**VALUES, "rider_avg_fare_cents_30d": 0.0, "zone_median_fare_per_km_30d": 0.0}
    assert on_demand({**REQUEST, "distance_km": 0.0}, zeros)["fare_per_km_to_zone_median"] is None
    assert on_demand(REQUEST, zeros)["amount_to_rider_avg_fare"] is None
    assert on_demand(REQUEST, zeros)["fare_per_km_to_zone_median"] is None
    assert on_demand({**REQUEST, "amount_cents": None}, VALUES)["amount_to_rider_avg_fare"] is None
    assert on_demand({**REQUEST, "occurred_at": None}, VALUES, FRAUD_SCORING_V1.on_demand) == {
        "amount_to_rider_avg_fare": 2.5,
        "fare_per_km_to_zone_median": 3.0,
        "hour_of_day": None,
        "is_new_card": None,
        "minutes_since_signup": None,
    }


def test_the_spending_features_are_missing_without_a_history_or_an_amount():
    found = on_demand(REQUEST, {"card_payments_24h": 0, "card_amount_cents_24h": 0})
    assert [found[n] for n in FRAUD_SCORING_V2.on_demand[6:]] == [None] * 4
    found = on_demand({**REQUEST, "amount_cents": None}, SPENDING)
    assert [found[n] for n in FRAUD_SCORING_V2.on_demand[5:]] == [None] * 5


def test_a_card_is_new_for_exactly_one_day():
    assert on_demand(REQUEST, {"card_added_at": T - 86_400 + 0.000001})["is_new_card"] == 1
    assert on_demand(REQUEST, {"card_added_at": T - 86_400})["is_new_card"] == 0
    assert on_demand(REQUEST, {"card_added_at": T})["is_new_card"] == 1


def test_the_request_time_may_be_a_datetime_a_string_or_seconds():
    assert request_seconds({"occurred_at": AT}) == T
    assert request_seconds({"occurred_at": "2026-01-05T14:30:00Z"}) == T
    assert request_seconds({"occurred_at": "2026-01-05T14:30:00"}) == T  # no zone: UTC
    assert request_seconds({"occurred_at": T}) == T
    assert request_seconds({}) is None
    late = datetime(2026, 1, 5, 23, 59, 59, tzinfo=UTC)
    assert on_demand({**REQUEST, "occurred_at": late}, VALUES)["hour_of_day"] == 23
