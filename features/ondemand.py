"""On-demand features: computed from the scoring request and the stored feature values, the same
way online (``features.serving``) and in training sets (``features.training``).

The request is a ``payments.authorized.v1`` payload (``amount_cents``, optional ``distance_km``,
``occurred_at``, ``card_id``, ``rider_id``, ``pickup_zone``). Every feature is ``None`` when an
input it needs is missing, or when it would divide by zero.

Pure Python: no Django, no Feast, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    "payment_amount_cents": "the payment is for {value}",
    "amount_to_card_mean_24h": "this payment is {value} times the card's mean over the last day",
    "amount_zscore_card_7d": (
        "this payment is {value} deviations from the card's mean over the last 7 days"
    ),
    "amount_zscore_card_30d": (
        "this payment is {value} deviations from the card's mean over the last 30 days"
    ),
    "amount_zscore_rider_30d": (
        "this payment is {value} deviations from the rider's mean over the last 30 days"
    ),
}


# Feature name -> dtype, as ``Aggregate.dtype``: how training sets type the columns.
DTYPES: Mapping[str, str] = {
    "amount_to_rider_avg_fare": "float64",
    "fare_per_km_to_zone_median": "float64",
    "hour_of_day": "int64",
    "is_new_card": "int64",
    "minutes_since_signup": "float64",
    "payment_amount_cents": "int64",
    "amount_to_card_mean_24h": "float64",
    "amount_zscore_card_7d": "float64",
    "amount_zscore_card_30d": "float64",
    "amount_zscore_rider_30d": "float64",
}

# A z-score's deviation is at least this (cents): a card that always paid the same fare has a
# spread of 0, and a payment unlike all of them should read large, not infinite or missing.
MIN_DEVIATION_CENTS = 100.0


# The request fields ``on_demand`` reads (a training set builds requests of these alone).
REQUEST_FIELDS = ("amount_cents", "distance_km", "occurred_at")


# Feature name -> the stored features it reads: an on-demand feature is only as served as its
# inputs.
INPUTS: Mapping[str, tuple[str, ...]] = {
    "amount_to_rider_avg_fare": ("rider_avg_fare_cents_30d",),
    "fare_per_km_to_zone_median": ("zone_median_fare_per_km_30d",),
    "hour_of_day": (),
    "is_new_card": ("card_added_at",),
    "minutes_since_signup": ("rider_signed_up_at",),
    "payment_amount_cents": (),
    "amount_to_card_mean_24h": ("card_amount_cents_24h", "card_payments_24h"),
    "amount_zscore_card_7d": ("card_amount_mean_7d", "card_amount_std_7d"),
    "amount_zscore_card_30d": ("card_amount_mean_30d", "card_amount_std_30d"),
    "amount_zscore_rider_30d": ("rider_amount_mean_30d", "rider_amount_std_30d"),
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


def _zscore(amount: Any, mean: Any, deviation: Any) -> float | None:
    if amount is None or mean is None or deviation is None:
        return None
    return (amount - mean) / max(deviation, MIN_DEVIATION_CENTS)


def on_demand(
    request: Mapping[str, Any],
    values: Mapping[str, Any],
    names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Return the on-demand features ``names`` (default: every one) for ``request`` (a payment
    payload) given the stored feature ``values`` (feature name -> value or ``None``).

    - ``amount_to_rider_avg_fare``: amount_cents / rider_avg_fare_cents_30d;
    - ``fare_per_km_to_zone_median``: (amount_cents / distance_km) / zone_median_fare_per_km_30d;
    - ``hour_of_day``: the request's UTC hour, 0-23;
    - ``is_new_card``: 1 when card_added_at is less than 24 h before the request, 0 when it is
      earlier, None when it is unknown (a card never seen added is not thereby new);
    - ``minutes_since_signup``: (request time - rider_signed_up_at) / 60;
    - ``payment_amount_cents``: the request's own amount (named apart from the request's
      field, which training sets keep as it is);
    - ``amount_to_card_mean_24h``: amount_cents / (card_amount_cents_24h / card_payments_24h),
      the day's payments including this one;
    - ``amount_zscore_card_7d``/``_30d``, ``amount_zscore_rider_30d``: (amount_cents - the
      mean) / the spread (at least ``MIN_DEVIATION_CENTS``) of the card's or rider's payments
      over the window, as of the view's latest snapshot.
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
            None if at is None or added is None else int(at - added < NEW_CARD_SECONDS)
        ),
        "minutes_since_signup": (
            None if at is None or signed_up is None else (at - signed_up) / 60
        ),
        "payment_amount_cents": amount,
        "amount_to_card_mean_24h": _ratio(
            amount,
            _ratio(values.get("card_amount_cents_24h"), values.get("card_payments_24h")),
        ),
        "amount_zscore_card_7d": _zscore(
            amount, values.get("card_amount_mean_7d"), values.get("card_amount_std_7d")
        ),
        "amount_zscore_card_30d": _zscore(
            amount, values.get("card_amount_mean_30d"), values.get("card_amount_std_30d")
        ),
        "amount_zscore_rider_30d": _zscore(
            amount, values.get("rider_amount_mean_30d"), values.get("rider_amount_std_30d")
        ),
    }
    return result if names is None else {name: result[name] for name in names}
