"""Writes of the canaries' guardrails: compare each canary's decisions with the champion's over
the newest scores and roll back one that breaches a guardrail (``ml.canary``)."""

from __future__ import annotations

from dataclasses import asdict

from django.conf import settings

from fraud.models import Deployment
from fraud.selectors import (
    decision_figures,
    deployment_champion,
    deployments_active,
    score_id_latest,
)
from ml.canary import Figures, Guardrails, breaches
from ml.models import RoleChange
from ml.services.registry import deployment_retire


def guardrails() -> Guardrails:
    """Return the guardrails' settings (``ML_CANARY_*``)."""
    return Guardrails(
        min_sample=settings.ML_CANARY_MIN_SAMPLE,
        max_flagged_ratio=settings.ML_CANARY_MAX_FLAGGED_RATIO,
        max_declined_ratio=settings.ML_CANARY_MAX_DECLINED_RATIO,
        max_degraded_gap=settings.ML_CANARY_MAX_DEGRADED_GAP,
        max_latency_ratio=settings.ML_CANARY_MAX_LATENCY_RATIO,
        latency_slack_ms=settings.ML_CANARY_LATENCY_SLACK_MS,
    )


def canaries_check() -> list[RoleChange]:
    """Compare each canary with the champion over the newest ``ML_CANARY_WINDOW_SCORES`` scores
    and retire each canary that breached a guardrail (its cards go back to the champion at the
    scorer's next poll); return the rollbacks recorded, each with its reasons and figures. A
    bandit one of whose arms is rolled back stops at its next update. Safe to repeat: a canary
    rolled back is no longer checked."""
    champion = deployment_champion()
    canaries = [d for d in deployments_active() if d.role == Deployment.Role.CANARY]
    if champion is None or not canaries:
        return []
    rules = guardrails()
    after = max(0, score_id_latest() - settings.ML_CANARY_WINDOW_SCORES)
    found = decision_figures(
        models=[champion.model_version, *(c.model_version for c in canaries)], after_id=after
    )
    if champion.model_version not in found:
        return []
    base = Figures(**found[champion.model_version])
    rolled_back = []
    for canary in canaries:
        if canary.model_version not in found:
            continue
        mine = Figures(**found[canary.model_version])
        reasons = breaches(mine, base, rules)
        if not reasons:
            continue
        deployment_retire(
            deployment=canary,
            reason="rolled back: " + "; ".join(reasons),
            figures={"canary": asdict(mine), "champion": asdict(base)},
        )
        rolled_back.append(
            RoleChange.objects.filter(model_version=canary.model_version).latest("id")
        )
    return rolled_back
