"""Reads of the fraud room."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from django.db.models import Count, Max

from fraud.models import Deployment, FraudScore


def deployments_stamp() -> tuple[int, datetime | None]:
    """Return (number of deployments, latest ``updated_at``): changes whenever a deployment is
    created, changed or deleted, so a scorer polls it to know when to reload."""
    stamp = Deployment.objects.aggregate(n=Count("id"), latest=Max("updated_at"))
    return stamp["n"], stamp["latest"]


def deployments_active() -> list[Deployment]:
    """Return every deployment that is not retired, in ``model_version`` order."""
    return list(Deployment.objects.exclude(role=Deployment.Role.RETIRED).order_by("model_version"))


def scores_unlogged(*, event_ids: Iterable[uuid.UUID]) -> list[FraudScore]:
    """Return the scores of ``event_ids`` whose served vector is not in the feature log yet."""
    return list(FraudScore.objects.filter(unlogged__isnull=False, event_id__in=list(event_ids)))


def scores_degraded(*, after_id: int = 0, limit: int = 500) -> list[FraudScore]:
    """Return degraded scores not rescored yet, oldest first, with ``id`` above ``after_id``."""
    return list(
        FraudScore.objects.filter(
            degraded=True, rescored_at__isnull=True, id__gt=after_id
        ).order_by("id")[:limit]
    )
