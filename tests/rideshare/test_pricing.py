from datetime import UTC, datetime, timedelta

import pytest

from rideshare import pricing
from rideshare.city import LatLng

T0 = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)


def test_haversine_matches_a_known_distance():
    # Paris to London, great circle on the mean Earth radius.
    assert pricing.haversine_km(LatLng(48.8566, 2.3522), LatLng(51.5074, -0.1278)) == (
        pytest.approx(343.556, abs=0.001)
    )
    assert pricing.haversine_km(LatLng(52.33, 4.845), LatLng(52.34, 4.845)) == pytest.approx(
        1.11195, abs=0.00001
    )


def test_fare_estimate_adds_base_distance_and_time():
    estimate = pricing.fare_estimate(LatLng(52.33, 4.845), LatLng(52.39, 4.935))
    # 250 + 120 * 9.048 + 30 * 22.6 = 2013.76 -> 2014
    assert estimate == pricing.FareEstimate(
        distance_km=9.048, duration_minutes=22.6, fare_cents=2014, currency="EUR"
    )


def test_fare_estimate_never_goes_below_the_minimum_fare():
    short = pricing.fare_estimate(LatLng(52.33, 4.845), LatLng(52.34, 4.845))
    assert short.distance_km == 1.112
    assert short.duration_minutes == 2.8
    assert short.fare_cents == 700
    assert pricing.fare_estimate(LatLng(52.33, 4.845), LatLng(52.33, 4.845)).fare_cents == 700


def test_rider_cancellation_is_free_before_a_driver_is_assigned():
    assert pricing.rider_cancellation_fee_cents(assigned_at=None, fare_cents=2014, now=T0) == 0


def test_rider_cancellation_is_free_through_the_grace_period_then_costs_the_fee():
    fee = pricing.rider_cancellation_fee_cents
    assert fee(assigned_at=T0, fare_cents=2014, now=T0 + timedelta(seconds=119)) == 0
    assert fee(assigned_at=T0, fare_cents=2014, now=T0 + timedelta(minutes=2)) == 0
    assert fee(assigned_at=T0, fare_cents=2014, now=T0 + timedelta(seconds=121)) == 500
    assert fee(assigned_at=T0, fare_cents=2014, now=T0 + timedelta(hours=1)) == 500


def test_cancellation_fee_is_never_more_than_the_fare():
    late = T0 + timedelta(minutes=5)
    assert pricing.rider_cancellation_fee_cents(assigned_at=T0, fare_cents=300, now=late) == 300


def test_cancellation_free_until():
    assert pricing.cancellation_free_until(None) is None
    assert pricing.cancellation_free_until(T0) == T0 + timedelta(minutes=2)
