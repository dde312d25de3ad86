"""On-demand features: pure functions of the payment request and the stored values."""

from __future__ import annotations

from datetime import UTC, datetime

from features.definitions import FRAUD_SCORING_V1
from features.ondemand import DESCRIPTIONS, DTYPES, on_demand, request_seconds

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


def test_every_on_demand_feature_from_a_full_request():
    assert on_demand(REQUEST, VALUES) == {
        "amount_to_rider_avg_fare": 2.5,
        "fare_per_km_to_zone_median": 3.0,
        "hour_of_day": 14,
        "is_new_card": 0,
        "minutes_since_signup": 90.0,
    }


def test_the_names_descriptions_and_types_are_the_services():
    assert tuple(on_demand(REQUEST, VALUES)) == FRAUD_SCORING_V1.on_demand
    assert tuple(DESCRIPTIONS) == tuple(DTYPES) == FRAUD_SCORING_V1.on_demand
    assert all("{value}" in text for text in DESCRIPTIONS.values())


def test_missing_or_zero_inputs_give_none():
    request = {**REQUEST, "distance_km": None}
    assert on_demand(request, {}) == {
        "amount_to_rider_avg_fare": None,
        "fare_per_km_to_zone_median": None,
        "hour_of_day": 14,
        "is_new_card": 1,  # a card never seen added is new
        "minutes_since_signup": None,
    }
    zeros = {**VALUES, "rider_avg_fare_cents_30d": 0.0, "zone_median_fare_per_km_30d": 0.0}
    assert on_demand({**REQUEST, "distance_km": 0.0}, zeros)["fare_per_km_to_zone_median"] is None
    assert on_demand(REQUEST, zeros)["amount_to_rider_avg_fare"] is None
    assert on_demand(REQUEST, zeros)["fare_per_km_to_zone_median"] is None
    assert on_demand({**REQUEST, "amount_cents": None}, VALUES)["amount_to_rider_avg_fare"] is None
    assert on_demand({**REQUEST, "occurred_at": None}, VALUES) == {
        "amount_to_rider_avg_fare": 2.5,
        "fare_per_km_to_zone_median": 3.0,
        "hour_of_day": None,
        "is_new_card": None,
        "minutes_since_signup": None,
    }


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
