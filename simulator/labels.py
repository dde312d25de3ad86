"""Delayed labels: which captured payments get a chargeback, and how many days later.

A fraudulent capture is charged back with probability ``fraction`` after a lognormal delay
(``median`` days, log-scale ``sigma``); a legitimate one is charged back (a false chargeback:
"friendly fraud", a forgotten ride) with probability ``false_rate`` after the same delay.
"""

from __future__ import annotations

import random
from datetime import timedelta

from simulator.config import LabelConfig

# Card networks give a cardholder 120 days to dispute: no chargeback comes later than that.
MAX_DELAY = timedelta(days=120)

REASON_FRAUD = "10.4"  # Visa: other fraud, card-absent environment
REASON_FALSE = "13.1"  # Visa: merchandise or services not received


def chargeback_delay(
    rng: random.Random, labels: LabelConfig, *, is_fraud: bool
) -> timedelta | None:
    """Return after how long the payment is charged back, or None when it never is.

    Draw two numbers from ``rng`` whatever the outcome, so one payment's label never shifts
    the draws of the next.
    """
    chance = rng.random()
    days = rng.lognormvariate(labels.mu, labels.delay_sigma)
    if chance >= (labels.fraction if is_fraud else labels.false_rate):
        return None
    return min(timedelta(days=days), MAX_DELAY)
