"""Decisions by thresholds, degraded payments to review, and the stable card buckets that give
canaries their share."""

from __future__ import annotations

import hashlib

import pytest

from fraud.decisions import Thresholds, canary_for, card_bucket, decide

THRESHOLDS = Thresholds(review=0.5, decline=0.9, degraded_review_cents=5000)


@pytest.mark.parametrize(
    ("score", "expected"),
    [(0.0, "approve"), (0.4999, "approve"), (0.5, "review"), (0.8999, "review"), (0.9, "decline"),
     (1.0, "decline")],
)  # fmt: skip
def test_the_score_decides_by_thresholds_inclusive(score, expected):
    assert decide(score=score, thresholds=THRESHOLDS, degraded=False, amount_cents=99_999) == (
        expected
    )


def test_a_degraded_high_amount_goes_to_review_and_a_low_one_is_approved():
    low, high = 4999, 5000
    assert decide(score=0.1, thresholds=THRESHOLDS, degraded=True, amount_cents=high) == "review"
    assert decide(score=0.1, thresholds=THRESHOLDS, degraded=True, amount_cents=low) == "approve"
    assert decide(score=0.1, thresholds=THRESHOLDS, degraded=False, amount_cents=high) == "approve"
    # Degradation never softens a decline.
    assert decide(score=0.95, thresholds=THRESHOLDS, degraded=True, amount_cents=high) == "decline"


def test_card_bucket_is_the_first_eight_bytes_of_sha256_over_two_to_the_64():
    assert card_bucket("card-1") == 0.45647609125330574
    assert card_bucket("card-2") == 0.7113201095587528
    digest = hashlib.sha256(b"card-7f3a9c41").digest()
    assert card_bucket("card-7f3a9c41") == int.from_bytes(digest[:8], "big") / 2**64


def test_a_canary_share_takes_that_share_of_cards_and_the_same_cards_every_time():
    shares = [("canary-a", 0.2)]
    chosen = [f"card-{i}" for i in range(10_000) if canary_for(card_bucket(f"card-{i}"), shares)]
    assert len(chosen) == 2011
    again = [f"card-{i}" for i in range(10_000) if canary_for(card_bucket(f"card-{i}"), shares)]
    assert again == chosen


def test_canaries_take_consecutive_slices_and_the_rest_is_the_champions():
    shares = [("a", 0.1), ("b", 0.25)]
    assert canary_for(0.0, shares) == "a"
    assert canary_for(0.0999, shares) == "a"
    assert canary_for(0.1, shares) == "b"
    assert canary_for(0.3499, shares) == "b"
    assert canary_for(0.35, shares) is None
    assert canary_for(0.5, []) is None
    # Growing a canary's share keeps every card it had.
    assert canary_for(0.05, [("a", 0.2)]) == "a"
