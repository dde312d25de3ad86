"""Reads of the fraud room."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from django.db.models import Count, Max, Q

from fraud.models import AUTHORIZATION, Decision, Deployment, FraudScore, ShadowScore

# A flag: a score whose decision (by the champion or a canary: shadow models write
# ``ShadowScore`` rows and never flag) is review or decline.
FLAGGED = (Decision.REVIEW, Decision.DECLINE)


def deployments_stamp() -> tuple[int, datetime | None]:
    """Return (number of deployments, latest ``updated_at``): changes whenever a deployment is
    created, changed or deleted, so a scorer polls it to know when to reload."""
    stamp = Deployment.objects.aggregate(n=Count("id"), latest=Max("updated_at"))
    return stamp["n"], stamp["latest"]


def deployments_active(*, checkpoint: str | None = AUTHORIZATION) -> list[Deployment]:
    """Return every deployment of ``checkpoint`` (None: of every checkpoint) that is not
    retired, in ``model_version`` order."""
    found = Deployment.objects.exclude(role=Deployment.Role.RETIRED)
    if checkpoint is not None:
        found = found.filter(checkpoint=checkpoint)
    return list(found.order_by("model_version"))


def deployment_champion(*, checkpoint: str = AUTHORIZATION) -> Deployment | None:
    """Return the champion's deployment of ``checkpoint``, ``None`` when it has none."""
    return Deployment.objects.filter(checkpoint=checkpoint, role=Deployment.Role.CHAMPION).first()


def deployment_champion_exists(*, checkpoint: str = AUTHORIZATION) -> bool:
    """Return whether a model is deployed as champion of ``checkpoint``."""
    return Deployment.objects.filter(checkpoint=checkpoint, role=Deployment.Role.CHAMPION).exists()


def scores_unlogged(*, event_ids: Iterable[uuid.UUID]) -> list[FraudScore]:
    """Return the scores of ``event_ids`` whose served vector is not in the feature log yet."""
    return list(FraudScore.objects.filter(unlogged__isnull=False, event_id__in=list(event_ids)))


def scores_degraded(
    *, after_id: int = 0, limit: int = 500, checkpoint: str = AUTHORIZATION
) -> list[FraudScore]:
    """Return degraded scores of ``checkpoint`` not rescored yet, oldest first, with ``id``
    above ``after_id``."""
    return list(
        FraudScore.objects.filter(
            checkpoint=checkpoint, degraded=True, rescored_at__isnull=True, id__gt=after_id
        ).order_by("id")[:limit]
    )


def flags_recent(*, limit: int) -> list[FraudScore]:
    """Return the newest ``limit`` flags, newest first."""
    return list(FraudScore.objects.filter(decision__in=FLAGGED).order_by("-id")[:limit])


def flag_ids_after(*, after_id: int, limit: int) -> list[int]:
    """Return the ids of the newest ``limit`` flags whose id is above ``after_id``, newest first."""
    flags = FraudScore.objects.filter(decision__in=FLAGGED, id__gt=after_id).order_by("-id")
    return list(flags.values_list("id", flat=True)[:limit])


def flags_by_id(*, ids: Iterable[int]) -> list[FraudScore]:
    """Return the flags among ``ids``, oldest first."""
    return list(FraudScore.objects.filter(decision__in=FLAGGED, id__in=list(ids)).order_by("id"))


def scored_event_time_latest() -> datetime | None:
    """Return the event time (``occurred_at``) of the newest score: the stream's clock, for
    what runs in event time (the learning loop's triggers)."""
    return FraudScore.objects.order_by("-id").values_list("occurred_at", flat=True).first()


def scores_recent(*, since: datetime, limit: int) -> list[tuple[float, dict]]:
    """Return (score, served vector record) of the newest ``limit`` scores of payments at or
    after ``since`` (event time), newest first."""
    return [(score, record) for score, record, at in served_newest(limit=limit) if at >= since]


def decisions_of(*, payment_ids: Iterable[str]) -> dict[str, str]:
    """Return the decision scored at authorization for each of ``payment_ids`` that has one (a
    payment authorized twice: its latest). The capture checkpoint's decisions on the same
    payments are its own model's, never the authorization's."""
    rows = FraudScore.objects.filter(
        checkpoint=AUTHORIZATION, payment_id__in=list(payment_ids)
    ).order_by("id")
    return dict(rows.values_list("payment_id", "decision"))


def score_id_latest() -> int:
    """Return the id of the newest score (0 when there is none): where an experiment starts
    counting."""
    return FraudScore.objects.aggregate(latest=Max("id"))["latest"] or 0


def decisions_by_model(
    *, models: Iterable[str], after_id: int, occurred_before: datetime | None = None
) -> dict[tuple[str, bool], int]:
    """Return how many payments scored after score ``after_id`` each of ``models`` decided,
    keyed by (model version, flagged), those that occurred before ``occurred_before`` only
    when given."""
    rows = FraudScore.objects.filter(id__gt=after_id, model_version__in=list(models))
    if occurred_before is not None:
        rows = rows.filter(occurred_at__lt=occurred_before)
    counted = rows.values("model_version", "decision").annotate(count=Count("id"))
    found: dict[tuple[str, bool], int] = {}
    for row in counted:
        key = (row["model_version"], row["decision"] in FLAGGED)
        found[key] = found.get(key, 0) + row["count"]
    return found


def decisions_on(
    *,
    models: Iterable[str],
    after_id: int,
    payment_ids: Iterable[str] | None = None,
    flagged: bool | None = None,
    occurred_before: datetime | None = None,
) -> list[tuple[str, str, bool]]:
    """Return (payment id, model version, flagged) of the payments scored after score
    ``after_id`` that one of ``models`` decided: among ``payment_ids``, flagged or not, and
    occurred before ``occurred_before``, each when given."""
    rows = FraudScore.objects.filter(id__gt=after_id, model_version__in=list(models))
    if payment_ids is not None:
        rows = rows.filter(payment_id__in=list(payment_ids))
    if flagged is not None:
        rows = rows.filter(decision__in=FLAGGED) if flagged else rows.exclude(decision__in=FLAGGED)
    if occurred_before is not None:
        rows = rows.filter(occurred_at__lt=occurred_before)
    return [
        (payment_id, model, decision in FLAGGED)
        for payment_id, model, decision in rows.values_list(
            "payment_id", "model_version", "decision"
        ).iterator(chunk_size=5000)
    ]


def decision_figures(*, models: Iterable[str], after_id: int) -> dict[str, dict]:
    """Return, per model of ``models`` that decided or should have decided any payment scored
    after score ``after_id``: how many it was to decide (``scored``), how many of those it
    failed (``errors``: the champion decided them, ``FraudScore.failed_model``), flagged,
    declined and scored degraded, and the p99 of their latency (ms; None when it decided
    none)."""
    models = list(models)
    after = FraudScore.objects.filter(id__gt=after_id)
    rows = after.filter(model_version__in=models, failed_model="")
    counted = rows.values("model_version").annotate(
        scored=Count("id"),
        flagged=Count("id", filter=Q(decision__in=FLAGGED)),
        declined=Count("id", filter=Q(decision=Decision.DECLINE)),
        degraded=Count("id", filter=Q(degraded=True)),
    )
    found = {row.pop("model_version"): row | {"errors": 0} for row in counted}
    for version, row in found.items():
        latencies = sorted(rows.filter(model_version=version).values_list("latency_ms", flat=True))
        row["latency_p99_ms"] = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    failed = after.filter(failed_model__in=models).values("failed_model").annotate(n=Count("id"))
    for row in failed:
        mine = found.setdefault(
            row["failed_model"],
            {"scored": 0, "flagged": 0, "declined": 0, "degraded": 0, "latency_p99_ms": None},
        )
        mine["errors"] = row["n"]
        mine["scored"] += row["n"]
    return found


def shadow_pairs(*, version: str, limit: int) -> list[tuple]:
    """Return, for the newest ``limit`` payments shadow model ``version`` scored that the
    champion decided: (payment id, occurred at, the champion's score, its decision, the
    shadow's score, its decision, the champion's prediction µs, the shadow's; a time None
    where it was not kept)."""
    shadows = {
        event_id: (score, decision, model_us)
        for event_id, score, decision, model_us in ShadowScore.objects.filter(model_version=version)
        .order_by("-id")
        .values_list("event_id", "score", "decision", "model_us")[:limit]
    }
    decided = FraudScore.objects.filter(event_id__in=list(shadows), role=Deployment.Role.CHAMPION)
    return [
        (payment_id, occurred_at, score, decision, *shadows[event_id][:2], model_us,
         shadows[event_id][2])
        for event_id, payment_id, occurred_at, score, decision, model_us in decided.values_list(
            "event_id", "payment_id", "occurred_at", "score", "decision", "model_us"
        ).iterator(chunk_size=5000)
    ]  # fmt: skip


def scores_newest(*, limit: int) -> list[tuple]:
    """Return the newest ``limit`` scores as (payment id, model version, occurred at, decision,
    score, card id, latency ms), newest first."""
    return list(
        FraudScore.objects.order_by("-id").values_list(
            "payment_id", "model_version", "occurred_at", "decision", "score", "card_id",
            "latency_ms",
        )[:limit]
    )  # fmt: skip


def served_newest(*, limit: int) -> list[tuple[float, dict, datetime]]:
    """Return (score, served vector record, occurred at) of the newest ``limit`` scores at
    authorization, newest first (a capture score's vector has another service's layout)."""
    rows = (
        FraudScore.objects.filter(checkpoint=AUTHORIZATION)
        .order_by("-id")
        .values_list("score", "features", "occurred_at")
    )
    return list(rows[:limit])
