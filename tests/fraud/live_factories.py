"""Flags (scores the scorer sent to review or declined) for the analyst page's tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from fraud.models import FraudScore

SCORED_AT = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)

REASONS = [
    {
        "feature": "card_velocity__payments_10m",
        "value": 9,
        "contribution": 1.7,
        "text": "9 payments on this card in the last 10 minutes",
    },
    {
        "feature": "card_age_hours",
        "value": 0.5,
        "contribution": 0.9,
        "text": "The card was added 30 minutes ago",
    },
    {
        "feature": "amount_cents",
        "value": 18250,
        "contribution": 0.4,
        "text": "The amount is €182.50",
    },
    {"feature": "zone_id", "value": 3, "contribution": 0.1, "text": "Pickup in zone Z-1-3"},
]


def score_make(
    *,
    decision: str = "review",
    score: float = 0.8125,
    amount_cents: int = 18250,
    card_id: str = "card-7f3a9c41",
    degraded: bool = False,
    consistency: str = "exact",
    consistency_lag_ms: float | None = None,
    role: str = "champion",
    reasons: list[dict] | None = None,
    scored_at: datetime = SCORED_AT,
    model_version: str = "fraud-lgbm-20250314-ab12cd",
    failed_model: str = "",
    model_us: float | None = None,
) -> FraudScore:
    """Create and return a score as the scorer writes it (committed by the caller's test)."""
    suffix = uuid.uuid4().hex[:8]
    return FraudScore.objects.create(
        event_id=uuid.uuid4(),
        payment_id=f"pay-{suffix}",
        card_id=card_id,
        rider_id=f"rider-{suffix}",
        pickup_zone="Z-1-3",
        amount_cents=amount_cents,
        currency="EUR",
        occurred_at=scored_at - timedelta(milliseconds=12),
        scored_at=scored_at,
        score=score,
        decision=decision,
        model_version=model_version,
        role=role,
        failed_model=failed_model,
        model_us=model_us,
        reasons=REASONS if reasons is None else reasons,
        degraded=degraded,
        degraded_features=["card_velocity__payments_10m"] if degraded else [],
        latency_ms=12.0,
        consistency=consistency,
        consistency_lag_ms=consistency_lag_ms,
    )
