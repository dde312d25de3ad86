"""What an analyst reads to decide a review: the queue, ordered by what is at stake, and a
case (the payment, where it came from, its features with how each moved the score, the
payments linked to it, notes and decisions). Reads only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from django.db.models import F, FloatField, Q, QuerySet
from django.db.models.functions import Cast

from fraud.artifacts import ModelRefused, booster_load
from fraud.explain import is_missing, reason_text
from fraud.models import Deployment, FraudScore, ReviewItem, ReviewNote
from fraud.scoring import feature_matrix, vector_from_record

LINK_WINDOW = timedelta(hours=24)
LINKS_MAX = 20


@dataclass(frozen=True)
class QueueFilter:
    """Which open reviews to list: ``claim`` is ``all``, ``mine`` or ``unclaimed``; amounts
    in cents; ``zone`` a pickup zone (blank: any)."""

    claim: str = "all"
    min_amount_cents: int = 0
    min_score: float = 0.0
    zone: str = ""


def reviews_queue(*, analyst_id: int, filters: QueueFilter | None = None) -> QuerySet[ReviewItem]:
    """Return the open reviews, first the escalated (oldest escalation first), then by expected
    loss (score x amount, highest first), then oldest first; each with ``priority``."""
    filters = filters or QueueFilter()
    reviews = ReviewItem.objects.filter(status=ReviewItem.Status.OPEN).select_related(
        "score", "claimed_by"
    )
    if filters.claim == "mine":
        reviews = reviews.filter(claimed_by_id=analyst_id)
    elif filters.claim == "unclaimed":
        reviews = reviews.filter(claimed_by__isnull=True)
    if filters.min_amount_cents:
        reviews = reviews.filter(score__amount_cents__gte=filters.min_amount_cents)
    if filters.min_score:
        reviews = reviews.filter(score__score__gte=filters.min_score)
    if filters.zone:
        reviews = reviews.filter(score__pickup_zone=filters.zone)
    return reviews.annotate(
        priority=F("score__score") * Cast("score__amount_cents", FloatField())
    ).order_by(F("escalated_at").asc(nulls_last=True), "-priority", "created_at", "id")


def review_next(
    *, analyst_id: int, after: ReviewItem | None = None, now: datetime, claim_lapse: timedelta
) -> ReviewItem | None:
    """Return the first review of the queue ``analyst_id`` may take (unclaimed, their own, or
    a lapsed claim), other than ``after``."""
    free = (
        Q(claimed_by__isnull=True)
        | Q(claimed_by_id=analyst_id)
        | Q(claimed_at__lte=now - claim_lapse)
    )
    reviews = reviews_queue(analyst_id=analyst_id).filter(free)
    if after is not None:
        reviews = reviews.exclude(pk=after.pk)
    return reviews.first()


@dataclass(frozen=True)
class FeatureLine:
    """One served feature as the case shows it: its words, and how much it pushed the score
    (``contribution``, log-odds; None when unknown) with the bar's width (0-100, of the
    strongest)."""

    name: str
    value: Any
    text: str
    contribution: float | None
    width: float


@dataclass(frozen=True)
class Case:
    review: ReviewItem
    score: FraudScore
    features: list[FeatureLine]
    # Whether ``features`` carry contributions from the model (else only the reasons stored).
    explained: bool
    linked: list[FraudScore]
    linked_devices: list[ReviewItem]
    notes: list[ReviewNote]


@lru_cache(maxsize=8)
def _booster(path: str, sha256: str, names: tuple[str, ...], service: str):
    return booster_load(
        artifact_path=path, sha256=sha256, feature_names=list(names), feature_service=service
    )


def _features(score: FraudScore) -> tuple[list[FeatureLine], bool]:
    """Return the score's served features, strongest push first, with the deciding model's
    contributions (``pred_contrib``) when its file can still be read; missing values last and
    never as a reason (no bar)."""
    if not score.features:
        # No vector kept (a score recorded before vectors were): the reasons stored with it.
        strongest = max((abs(r["contribution"]) for r in score.reasons), default=0.0) or 1.0
        return [
            FeatureLine(
                name=r["feature"],
                value=r.get("value"),
                text=r["text"],
                contribution=r["contribution"],
                width=100 * abs(r["contribution"]) / strongest,
            )
            for r in score.reasons
        ], False
    vector, _ = vector_from_record(score.features)
    values = vector.features
    contributions: dict[str, float] = {}
    from_model = False
    deployment = Deployment.objects.filter(model_version=score.model_version).first()
    if deployment is not None:
        try:
            booster = _booster(
                deployment.artifact_path,
                deployment.sha256,
                tuple(deployment.feature_names),
                deployment.feature_service,
            )
            names = list(deployment.feature_names)
            row = booster.predict(feature_matrix([vector], names), pred_contrib=True)[0]
            contributions = {n: float(row[i]) for i, n in enumerate(names)}
            from_model = True
        except ModelRefused:
            contributions = {}
    if not contributions:
        contributions = {r["feature"]: r["contribution"] for r in score.reasons}
    strongest = max((abs(c) for c in contributions.values()), default=0.0) or 1.0
    lines = []
    for name, value in values.items():
        missing = is_missing(value)
        contribution = None if missing else contributions.get(name)
        lines.append(
            FeatureLine(
                name=name,
                value=value,
                text=reason_text(name, value, score.currency)
                if not missing
                else f"no value for {name.replace('_', ' ')}",
                contribution=contribution,
                width=0.0 if contribution is None else 100 * abs(contribution) / strongest,
            )
        )
    lines.sort(key=lambda line: (line.contribution is None, -abs(line.contribution or 0.0)))
    return lines, from_model


def review_case(*, review: ReviewItem) -> Case:
    """Return the case of ``review``: its score, features, the card's and rider's other
    payments and the device's other reviews within ``LINK_WINDOW`` of it, and its notes."""
    score = review.score
    low, high = score.occurred_at - LINK_WINDOW, score.occurred_at + LINK_WINDOW
    linked = list(
        FraudScore.objects.filter(
            Q(card_id=score.card_id) | Q(rider_id=score.rider_id),
            occurred_at__gte=low,
            occurred_at__lte=high,
        )
        .exclude(pk=score.pk)
        .select_related("review")
        .order_by("-occurred_at")[:LINKS_MAX]
    )
    devices = []
    if review.device_id:
        devices = list(
            ReviewItem.objects.filter(
                device_id=review.device_id,
                score__occurred_at__gte=low,
                score__occurred_at__lte=high,
            )
            .exclude(pk=review.pk)
            .exclude(score__rider_id=score.rider_id)
            .select_related("score")
            .order_by("-score__occurred_at")[:LINKS_MAX]
        )
    features, explained = _features(score)
    return Case(
        review=review,
        score=score,
        features=features,
        explained=explained,
        linked=linked,
        linked_devices=devices,
        notes=list(review.notes.select_related("author").order_by("created_at")),
    )
