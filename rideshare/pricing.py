"""Fares and cancellation fees.

A fare is a base fare plus per-kilometre (great-circle distance) and per-minute rates; the
duration is estimated from the distance at an assumed average city speed. The estimate is also
the fare charged at completion (no metering). Money is in integer euro cents.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from rideshare.city import LatLng

CURRENCY = "EUR"
BASE_FARE_CENTS = 250
PER_KM_CENTS = 120
PER_MINUTE_CENTS = 30
MINIMUM_FARE_CENTS = 700
AVERAGE_SPEED_KMH = 24.0
EARTH_RADIUS_KM = 6371.0088

# A rider cancelling after a driver was assigned pays a fee once this grace period is over.
CANCELLATION_GRACE = timedelta(minutes=2)
CANCELLATION_FEE_CENTS = 500


@dataclass(frozen=True)
class FareEstimate:
    distance_km: float
    duration_minutes: float
    fare_cents: int
    currency: str = CURRENCY


def haversine_km(a: LatLng, b: LatLng) -> float:
    """Return the great-circle distance between ``a`` and ``b`` in kilometres."""
    lat1, lng1, lat2, lng2 = map(math.radians, (a.lat, a.lng, b.lat, b.lng))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lng2 - lng1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def fare_estimate(pickup: LatLng, dropoff: LatLng) -> FareEstimate:
    """Return the distance (km, 3 decimals), duration (minutes, 1 decimal) and fare (cents).

    The fare is the base fare plus the distance and time rates, rounded half up to the cent,
    and never less than the minimum fare.
    """
    distance_km = round(haversine_km(pickup, dropoff), 3)
    duration_minutes = round(distance_km / AVERAGE_SPEED_KMH * 60, 1)
    raw = (
        Decimal(BASE_FARE_CENTS)
        + Decimal(PER_KM_CENTS) * Decimal(str(distance_km))
        + Decimal(PER_MINUTE_CENTS) * Decimal(str(duration_minutes))
    )
    fare = int(raw.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return FareEstimate(
        distance_km=distance_km,
        duration_minutes=duration_minutes,
        fare_cents=max(fare, MINIMUM_FARE_CENTS),
    )


def rider_cancellation_fee_cents(
    *, assigned_at: datetime | None, fare_cents: int, now: datetime
) -> int:
    """Return the fee (cents) a rider pays for cancelling at ``now``.

    Free before a driver is assigned (``assigned_at`` is None) and for ``CANCELLATION_GRACE``
    after the assignment (the boundary included); then ``CANCELLATION_FEE_CENTS``, never more
    than the fare. A driver's cancellation is always free for the rider.
    """
    if assigned_at is None or now - assigned_at <= CANCELLATION_GRACE:
        return 0
    return min(CANCELLATION_FEE_CENTS, fare_cents)


def cancellation_free_until(assigned_at: datetime | None) -> datetime | None:
    """Return when a rider's free cancellation ends (None: free until a driver is assigned)."""
    return None if assigned_at is None else assigned_at + CANCELLATION_GRACE
