"""Decisions from scores, and which deployment decides for a card.

Pure Python: no Django, no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

APPROVE = "approve"
REVIEW = "review"
DECLINE = "decline"
DECISIONS = (APPROVE, REVIEW, DECLINE)


@dataclass(frozen=True)
class Thresholds:
    """Score >= ``decline`` declines, >= ``review`` reviews, else approves; a degraded score
    (features the store could not serve) of ``degraded_review_cents`` or more is reviewed at
    least."""

    review: float
    decline: float
    degraded_review_cents: int


def decide(*, score: float, thresholds: Thresholds, degraded: bool, amount_cents: int) -> str:
    """Return ``approve``, ``review`` or ``decline`` for ``score`` (0-1) of a payment of
    ``amount_cents``."""
    if score >= thresholds.decline:
        return DECLINE
    if score >= thresholds.review:
        return REVIEW
    if degraded and amount_cents >= thresholds.degraded_review_cents:
        return REVIEW
    return APPROVE


def card_bucket(card_id: str) -> float:
    """Return the card's place in [0, 1): the first 8 bytes of sha256(card_id) over 2**64.

    Stable across processes and restarts (unlike ``hash``), so a card stays with the same
    deployment while the canary shares stay the same.
    """
    digest = hashlib.sha256(card_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def canary_for(bucket: float, shares: Sequence[tuple[str, float]]) -> str | None:
    """Return the canary deciding for a card in ``bucket``, or ``None`` for the champion.

    ``shares`` lists (model_version, share) in a fixed order; the canaries take consecutive
    slices of [0, 1) from 0 (a total above 1 is cut at 1): a card's canary changes only when
    the shares before it change.
    """
    start = 0.0
    for version, share in shares:
        end = start + share
        if start <= bucket < end:
            return version
        start = end
    return None
