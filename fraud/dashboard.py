"""The live dashboard's figures: what the scorer did over the last hour, the review queue now,
how analysts decided, and how well the scores rank cards per day. Reads only.

``FraudScore`` has no index on time (one more index is one more write on the scorer's path at
thousands of rows a second): ids follow time closely (each scorer commits its batches in
order), so a window is found as an id range by bisecting the primary key (``id_at``) and read
as a range scan of the key. Latency and score figures come from a sample of the window
(every ``step``-th id) capped near ``SAMPLE_MAX`` rows, so the page costs the same at 10 and
at 1,000 payments a second.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Max, Min
from django.db.models.functions import Mod, TruncMinute

from fraud.decisions import DECISIONS
from fraud.models import FRAUD_OUTCOMES, FraudScore, ReviewItem
from fraud.selectors import FLAGGED

WINDOW = timedelta(hours=1)
SAMPLE_MAX = 20_000
SCORE_BINS = 20
PRECISION_DAYS = 14
PRECISION_K = 100


def id_at(moment: datetime) -> int | None:
    """Return the smallest score id scored at or after ``moment`` (None: none is), by
    bisecting the primary key: ~20 index lookups whatever the table's size."""
    bounds = FraudScore.objects.aggregate(low=Min("id"), high=Max("id"))
    low, high = bounds["low"], bounds["high"]
    if low is None:
        return None
    last = FraudScore.objects.filter(id=high).values_list("scored_at", flat=True).first()
    if last is None or last < moment:
        return None
    while low < high:
        middle = (low + high) // 2
        found = (
            FraudScore.objects.filter(id__gte=middle)
            .order_by("id")
            .values_list("id", "scored_at")
            .first()
        )
        if found is None:
            break
        score_id, at = found
        if at >= moment:
            high = score_id
        else:
            low = score_id + 1
    return low


# Where past days begin in the id sequence, as found: a day that is over never moves (a score
# is written once), so each is bisected once per process. Bounded: cleared past a year of days.
_DAY_STARTS: dict[datetime, int | None] = {}


def _day_start(day: datetime, *, now: datetime) -> int | None:
    """Return ``id_at(day)``, remembered once the day after it has begun and a score exists
    after it (before that, a later score may still become its first)."""
    if day in _DAY_STARTS:
        return _DAY_STARTS[day]
    found = id_at(day)
    if found is not None and day + timedelta(days=1) <= now:
        if len(_DAY_STARTS) > 400:
            _DAY_STARTS.clear()
        _DAY_STARTS[day] = found
    return found


def _percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


@dataclass(frozen=True)
class Snapshot:
    """Everything the dashboard draws, JSON-ready through ``as_json``."""

    at: datetime
    minutes: list[str]
    payments: list[int]
    flagged_share: list[float | None]
    decisions: dict[str, list[int]]
    latency_p50: list[float | None]
    latency_p99: list[float | None]
    score_bins: list[int]
    queue_open: int
    queue_ages: dict[str, int]
    oldest_open_minutes: float | None
    outcomes: dict[str, int]
    review_precision: float | None
    precision_days: list[str]
    precision_at_k: list[float | None]
    labelled_cards: list[int]
    last_flag_id: int

    def as_json(self) -> dict:
        data = dict(self.__dict__)
        data["at"] = self.at.isoformat()
        return data


def dashboard_snapshot(*, now: datetime) -> Snapshot:
    """Return the dashboard's figures at ``now``."""
    start = now - WINDOW
    first = id_at(start)
    minutes = [
        (start + timedelta(minutes=m + 1)).replace(second=0, microsecond=0) for m in range(60)
    ]
    labels = [m.isoformat() for m in minutes]
    index = {m: i for i, m in enumerate(minutes)}
    payments = [0] * 60
    decisions = {d: [0] * 60 for d in DECISIONS}
    p50: list[float | None] = [None] * 60
    p99: list[float | None] = [None] * 60
    bins = [0] * SCORE_BINS
    if first is not None:
        window = FraudScore.objects.filter(id__gte=first, scored_at__gt=start)
        counts = (
            window.annotate(minute=TruncMinute("scored_at"))
            .values_list("minute", "decision")
            .annotate(n=Count("id"))
        )
        for minute, decision, n in counts:
            i = index.get(minute)
            if i is not None and decision in decisions:
                decisions[decision][i] += n
                payments[i] += n
        total = sum(payments)
        step = max(1, total // SAMPLE_MAX)
        sampled = window.annotate(slot=Mod("id", step)).filter(slot=0) if step > 1 else window
        sample = sampled.values_list("scored_at", "latency_ms", "score")
        by_minute: dict[int, list[float]] = {}
        for at, latency, score in sample:
            i = index.get(at.replace(second=0, microsecond=0))
            if i is not None:
                by_minute.setdefault(i, []).append(latency)
            bins[min(SCORE_BINS - 1, int(score * SCORE_BINS))] += 1
        for i, latencies in by_minute.items():
            p50[i], p99[i] = _percentile(latencies, 0.5), _percentile(latencies, 0.99)
    flagged = [
        (decisions["review"][i] + decisions["decline"][i]) / payments[i] if payments[i] else None
        for i in range(60)
    ]
    opened = list(
        ReviewItem.objects.filter(status=ReviewItem.Status.OPEN).values_list(
            "created_at", flat=True
        )
    )
    ages = Counter()
    for created in opened:
        age = (now - created).total_seconds() / 60
        ages[_age_bucket(age)] += 1
    since_day = now - timedelta(days=1)
    outcomes = dict(
        ReviewItem.objects.filter(status=ReviewItem.Status.DECIDED, decided_at__gt=since_day)
        .values_list("outcome")
        .annotate(n=Count("id"))
    )
    decided = sum(outcomes.values())
    fraud = sum(outcomes.get(o, 0) for o in FRAUD_OUTCOMES)
    days, precision, labelled = _precision_at_k(now)
    last_flag = (
        FraudScore.objects.filter(decision__in=FLAGGED).order_by("-id")
        .values_list("id", flat=True).first()
    )  # fmt: skip
    return Snapshot(
        at=now,
        minutes=labels,
        payments=payments,
        flagged_share=flagged,
        decisions=decisions,
        latency_p50=p50,
        latency_p99=p99,
        score_bins=bins,
        queue_open=len(opened),
        queue_ages={k: ages.get(k, 0) for k in ("< 15 min", "< 1 h", "< 1 day", "older")},
        oldest_open_minutes=max(((now - c).total_seconds() / 60 for c in opened), default=None),
        outcomes=outcomes,
        review_precision=fraud / decided if decided else None,
        precision_days=days,
        precision_at_k=precision,
        labelled_cards=labelled,
        last_flag_id=last_flag or 0,
    )


def _age_bucket(minutes: float) -> str:
    if minutes < 15:
        return "< 15 min"
    if minutes < 60:
        return "< 1 h"
    return "< 1 day" if minutes < 1440 else "older"


def _precision_at_k(now: datetime) -> tuple[list[str], list[float | None], list[int]]:
    """Card Precision@k per day (the last ``PRECISION_DAYS``): of the ``PRECISION_K`` cards
    scored highest that day, the share analysts found fraudulent, among those they decided
    (None: none decided yet; labels arrive later). The top cards come from the flagged scores
    (the partial index), where the highest scores are."""
    days, values, labelled = [], [], []
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    for back in range(PRECISION_DAYS - 1, -1, -1):
        day = today - timedelta(days=back)
        first = _day_start(day, now=now)
        following = _day_start(day + timedelta(days=1), now=now)
        days.append(day.date().isoformat())
        if first is None:
            values.append(None)
            labelled.append(0)
            continue
        scores = FraudScore.objects.filter(
            id__gte=first, decision__in=FLAGGED, scored_at__gte=day,
            scored_at__lt=day + timedelta(days=1),
        )  # fmt: skip
        if following is not None:
            scores = scores.filter(id__lt=following)
        top: dict[str, int] = {}
        for score_id, card in scores.order_by("-score").values_list("id", "card_id")[
            : PRECISION_K * 20
        ]:
            if card not in top:
                top[card] = score_id
            if len(top) == PRECISION_K:
                break
        outcomes = dict(
            ReviewItem.objects.filter(score_id__in=top.values())
            .exclude(outcome="")
            .values_list("score_id", "outcome")
        )
        decided = len(outcomes)
        fraud = sum(1 for o in outcomes.values() if o in FRAUD_OUTCOMES)
        values.append(fraud / decided if decided else None)
        labelled.append(decided)
    return days, values, labelled
