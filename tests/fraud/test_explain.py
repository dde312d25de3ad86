"""Explanations: the strongest positive contributions, in the features' own plain words."""

from __future__ import annotations

import math

from fraud.explain import reason_text, reasons

NAMES = ["card_payments_10m", "card_added_at", "amount_to_rider_avg_fare", "driver_assignments_7d"]


def test_the_three_strongest_positive_contributions_in_plain_words_bias_ignored():
    values = {
        "card_payments_10m": 9,
        "card_added_at": 1741944413.0,
        "amount_to_rider_avg_fare": 3.456,
        "driver_assignments_7d": 4,
    }
    # One per feature, then the bias (large, ignored).
    contributions = [1.7, 0.9, -0.4, 0.3, 5.0]

    assert reasons(contributions=contributions, feature_names=NAMES, values=values) == [
        {
            "feature": "card_payments_10m",
            "value": 9,
            "contribution": 1.7,
            "text": "9 payments on this card in the last 10 minutes",
        },
        {
            "feature": "card_added_at",
            "value": 1741944413.0,
            "contribution": 0.9,
            "text": "card added at 2025-03-14 09:26 UTC",
        },
        {
            "feature": "driver_assignments_7d",
            "value": 4,
            "contribution": 0.3,
            "text": "driver assignments 7d is 4",
        },
    ]


def test_no_positive_contribution_gives_no_reason_and_ties_keep_feature_order():
    values = dict.fromkeys(NAMES, 1)
    assert reasons(contributions=[-1, 0, -2, 0, 3], feature_names=NAMES, values=values) == []
    tied = reasons(contributions=[0.5, 0.5, 0.5, 0.5, 0], feature_names=NAMES, values=values)
    assert [r["feature"] for r in tied] == NAMES[:3]


def test_on_demand_features_missing_values_and_float_rounding_read_plainly():
    assert reason_text("amount_to_rider_avg_fare", 3.456) == (
        "this payment is 3.46 times the rider's average fare"
    )
    assert reason_text("is_new_card", 1) == "the card was added less than a day ago (1 = yes)"
    assert reason_text("card_payments_24h", 12.0) == ("12 payments on this card in the last day")
    assert reason_text("card_payments_1h", None) == ("no value was available for card payments 1h")
    assert reason_text("card_payments_1h", math.nan) == (
        "no value was available for card payments 1h"
    )
    missing = reasons(
        contributions=[0.2, 0, 0, 0, 0], feature_names=NAMES, values={"card_payments_10m": None}
    )
    assert missing == [
        {
            "feature": "card_payments_10m",
            "value": None,
            "contribution": 0.2,
            "text": "no value was available for card payments 10m",
        }
    ]
