"""A rule's backtest: what it would have done over the payments scored in a window, from their
logged vectors (the values served, not recomputed) and the labels known so far.

Labels here are the analysts' review outcomes (confirmed fraud and refunded as fraud: fraud;
approved and legitimate: not). Chargebacks reach the learning loop's label intake, not this
room, so a payment nobody reviewed counts as unlabelled. Reads only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings

from fraud.models import FRAUD_OUTCOMES, FraudScore, ReviewItem
from fraud.policy import REQUEST_WORDS, CompiledRule, columns_of
from fraud.scoring import vector_from_record
from fraud.selectors import FLAGGED

# At most this many payments, newest first: a page waits for the answer.
BACKTEST_MAX = 50_000
CHUNK = 2_000


@dataclass(frozen=True)
class Backtest:
    since: datetime
    until: datetime
    payments: int
    hits: int
    # Of the hits: those the model already sent to review or declined.
    flagged_by_model: int
    labelled_hits: int
    fraud_hits: int
    # Every payment of the window labelled fraud, hit or not.
    fraud_total: int
    # Analyst time the hits would cost as reviews the model did not already make.
    review_minutes: float
    seconds: float
    capped: bool

    @property
    def hit_share(self) -> float | None:
        return self.hits / self.payments if self.payments else None

    @property
    def precision(self) -> float | None:
        return self.fraud_hits / self.labelled_hits if self.labelled_hits else None

    @property
    def recall(self) -> float | None:
        return self.fraud_hits / self.fraud_total if self.fraud_total else None


def rule_backtest(
    *, rule: CompiledRule, action: str, until: datetime, days: float = 7.0
) -> Backtest:
    """Evaluate ``rule`` over the payments scored in the ``days`` before ``until`` (at most
    ``BACKTEST_MAX``, newest first) as the scorer would have, and count what it would have
    hit against what the model did and what analysts decided."""
    started = time.monotonic()
    since = until - timedelta(days=days)
    window = FraudScore.objects.filter(occurred_at__gt=since, occurred_at__lte=until)
    ids = list(window.order_by("-occurred_at").values_list("id", flat=True)[: BACKTEST_MAX + 1])
    capped = len(ids) > BACKTEST_MAX
    ids = ids[:BACKTEST_MAX]
    outcomes = dict(
        ReviewItem.objects.filter(score_id__in=ids)
        .exclude(outcome="")
        .values_list("score_id", "outcome")
    )
    hits = flagged = labelled = fraud_hits = 0
    fraud_total = sum(1 for o in outcomes.values() if o in FRAUD_OUTCOMES)
    for start in range(0, len(ids), CHUNK):
        chunk = list(
            FraudScore.objects.filter(id__in=ids[start : start + CHUNK]).values_list(
                "id", "decision", "features", "card_id", "rider_id", "pickup_zone", "amount_cents"
            )
        )
        requests, features = [], []
        for _, _, record, card_id, rider_id, zone, amount in chunk:
            request = {
                "card_id": card_id, "rider_id": rider_id, "pickup_zone": zone,
                "amount_cents": amount,
            }  # fmt: skip
            values = {}
            if record:
                request.update(record.get("request") or {})
                vector, _ = vector_from_record(record)
                values = vector.features
            requests.append(request)
            features.append(values)
        columns = columns_of(requests, features, rule.symbols, frozenset(REQUEST_WORDS))
        matched = rule.evaluate(columns, len(chunk))
        for (score_id, decision, *_), hit in zip(chunk, matched, strict=True):
            if not hit:
                continue
            hits += 1
            flagged += decision in FLAGGED
            outcome = outcomes.get(score_id)
            if outcome:
                labelled += 1
                fraud_hits += outcome in FRAUD_OUTCOMES
    minutes = settings.FRAUD_REVIEW_MINUTES * (hits - flagged) if action == "review" else 0.0
    return Backtest(
        since=since,
        until=until,
        payments=len(ids),
        hits=hits,
        flagged_by_model=flagged,
        labelled_hits=labelled,
        fraud_hits=fraud_hits,
        fraud_total=fraud_total,
        review_minutes=minutes,
        seconds=time.monotonic() - started,
        capped=capped,
    )
