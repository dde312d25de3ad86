"""On-demand features: computed from the scoring request and the stored feature values, the same
way online (``features.serving``) and in training sets (``features.training``).

The request is a ``payments.authorized.v1`` payload (``amount_cents``, optional ``distance_km``,
``occurred_at``, ``card_id``, ``rider_id``, ``pickup_zone``). Every feature is ``None`` when an
input it needs is missing, or when it would divide by zero.

Pure Python: no Django, no Feast, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

SECONDS_PER_DAY = 86_400
# A card first added less than this long before the request is new.
NEW_CARD_SECONDS = SECONDS_PER_DAY

# Feature name -> the value in plain words (``{value}`` is replaced), like ``Aggregate.describe``.
DESCRIPTIONS: Mapping[str, str] = {
    "amount_to_rider_avg_fare": "this payment is {value} times the rider's average fare",
    "fare_per_km_to_zone_median": (
        "this payment per km is {value} times the median fare per km in the pickup zone"
    ),
    "hour_of_day": "the payment was made at {value} o'clock (UTC)",
    "is_new_card": "the card was added less than a day ago ({value} = yes)",
    "minutes_since_signup": "the rider signed up {value} minutes before this payment",
}


# Feature name -> dtype, as ``Aggregate.dtype``: how training sets type the columns.
DTYPES: Mapping[str, str] = {
    "amount_to_rider_avg_fare": "float64",
    "fare_per_km_to_zone_median": "float64",
    "hour_of_day": "int64",
    "is_new_card": "int64",
    "minutes_since_signup": "float64",
}


# The request fields ``on_demand`` reads (a training set builds requests of these alone).
REQUEST_FIELDS = ("amount_cents", "distance_km", "occurred_at")


# Feature name -> the stored features it reads: an on-demand feature is only as served as its
# inputs (``is_new_card`` reads 1 when ``card_added_at`` is missing, served or not).
INPUTS: Mapping[str, tuple[str, ...]] = {
    "amount_to_rider_avg_fare": ("rider_avg_fare_cents_30d",),
    "fare_per_km_to_zone_median": ("zone_median_fare_per_km_30d",),
    "hour_of_day": (),
    "is_new_card": ("card_added_at",),
    "minutes_since_signup": ("rider_signed_up_at",),
}


def request_seconds(request: Mapping[str, Any]) -> float | None:
    """Return the request's ``occurred_at`` in seconds since the epoch (UTC), ``None`` when it
    has none. Accept an aware datetime, an ISO 8601 string (a zone-less one is UTC) or seconds."""
    moment = request.get("occurred_at")
    if moment is None:
        return None
    if isinstance(moment, int | float):
        return float(moment)
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    # pandas.Timestamp and the like
    return float(moment.timestamp())


def _ratio(numerator: Any, denominator: Any) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def on_demand(request: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """Return every on-demand feature of ``fraud_scoring_v1`` for ``request`` (a payment
    payload) given the stored feature ``values`` (feature name -> value or ``None``).

    - ``amount_to_rider_avg_fare``: amount_cents / rider_avg_fare_cents_30d;
    - ``fare_per_km_to_zone_median``: (amount_cents / distance_km) / zone_median_fare_per_km_30d;
    - ``hour_of_day``: the request's UTC hour, 0-23;
    - ``is_new_card``: 1 when card_added_at is missing or less than 24 h before the request,
      else 0;
    - ``minutes_since_signup``: (request time - rider_signed_up_at) / 60.
    """
    amount = request.get("amount_cents")
    at = request_seconds(request)
    added = values.get("card_added_at")
    signed_up = values.get("rider_signed_up_at")
    result = {
        "amount_to_rider_avg_fare": _ratio(amount, values.get("rider_avg_fare_cents_30d")),
        "fare_per_km_to_zone_median": _ratio(
            _ratio(amount, request.get("distance_km")), values.get("zone_median_fare_per_km_30d")
        ),
        "hour_of_day": None if at is None else datetime.fromtimestamp(at, UTC).hour,
        "is_new_card": (
            None if at is None else int(added is None or at - added < NEW_CARD_SECONDS)
        ),
        "minutes_since_signup": (
            None if at is None or signed_up is None else (at - signed_up) / 60
        ),
    }
    return result
