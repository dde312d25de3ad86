"""Writes of the canaries' guardrails and the shadows' promotion rule: compare each canary's
decisions with the champion's over the newest scores and roll back one that breaches a
guardrail (``ml.canary``); move a shadow no worse than the champion on the same payments to
canary (``ml.shadow``)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta

from django.conf import settings

from fraud.models import Deployment
from fraud.selectors import (
    decision_figures,
    deployment_champion,
    deployments_active,
    score_id_latest,
    scored_event_time_latest,
)
from ml.bandit import ab_pick
from ml.canary import Figures, Guardrails, breaches
from ml.models import RoleChange
from ml.selectors import arm_evidence, bandit_arms_running, canary_since, shadow_of
from ml.services.registry import deployment_retire, model_promote, previous_champions

# Fewer labelled frauds than this say nothing about average precision.
MIN_POSITIVES = 5


def guardrails() -> Guardrails:
    """Return the guardrails' settings (``ML_CANARY_*``)."""
    return Guardrails(
        min_sample=settings.ML_CANARY_MIN_SAMPLE,
        max_flagged_ratio=settings.ML_CANARY_MAX_FLAGGED_RATIO,
        max_declined_ratio=settings.ML_CANARY_MAX_DECLINED_RATIO,
        max_degraded_gap=settings.ML_CANARY_MAX_DEGRADED_GAP,
        max_error_gap=settings.ML_CANARY_MAX_ERROR_GAP,
        max_latency_ratio=settings.ML_CANARY_MAX_LATENCY_RATIO,
        latency_slack_ms=settings.ML_CANARY_LATENCY_SLACK_MS,
    )


def canaries_check() -> list[RoleChange]:
    """Compare each canary with the champion over the newest ``ML_CANARY_WINDOW_SCORES`` scores
    and retire each canary that breached a guardrail (its cards go back to the champion at the
    scorer's next poll); with ``ML_CANARY_DECIDE``, promote one that beats the champion on the
    known outcomes since it became a canary, retire one the champion beats (``_canary_decide``;
    a bandit's arms are its own). Return the changes recorded, each with its reasons and
    figures. A bandit one of whose arms is rolled back stops at its next update. Safe to
    repeat: a canary rolled back or promoted is no longer checked."""
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
    arms = bandit_arms_running()
    changes = []
    for canary in canaries:
        if canary.model_version not in found:
            continue
        mine = Figures(**found[canary.model_version])
        reasons = breaches(mine, base, rules)
        if reasons:
            changes.append(
                deployment_retire(
                    deployment=canary,
                    reason="rolled back: " + "; ".join(reasons),
                    figures={"canary": asdict(mine), "champion": asdict(base)},
                )
            )
        elif settings.ML_CANARY_DECIDE and canary.model_version not in arms:
            change = _canary_decide(canary, champion)
            if change is not None:
                changes.append(change)
    return changes


def _canary_decide(canary: Deployment, champion: Deployment) -> RoleChange | None:
    """Promote ``canary`` when it beats the champion on the outcomes of the payments each
    decided since it became a canary (``ml.bandit.ab_pick``, at least
    ``ML_CANARY_MIN_REWARDS`` each), retire it when the champion beats it; return the
    canary's change of role, ``None`` when neither happened."""
    change = canary_since(canary.model_version)
    now = scored_event_time_latest()
    if change is None or now is None:
        return None
    versions = [champion.model_version, canary.model_version]
    arms = arm_evidence(
        versions,
        after_score_id=change.after_score_id,
        since=change.at,
        now=now,
        maturity=timedelta(days=settings.ML_CHARGEBACK_MATURITY_DAYS),
    )
    pick = ab_pick(arms, min_samples=settings.ML_CANARY_MIN_REWARDS)
    if pick is None:
        return None
    figures = {arm.name: asdict(arm) for arm in arms}
    rewards = sum(int(arm.samples) for arm in arms)
    if pick != canary.model_version:
        return deployment_retire(
            deployment=canary,
            reason=f"lost to the champion on {rewards:,} known outcomes",
            figures=figures,
        )
    model_promote(
        version=canary.model_version,
        reason=f"won against the champion on {rewards:,} known outcomes",
        figures=figures,
    )
    return _latest_change(canary.model_version)


def _latest_change(version: str) -> RoleChange:
    """Return the change of ``version``'s role just recorded (``model_promote`` returns the
    deployment)."""
    return RoleChange.objects.filter(model_version=version).latest("id")


def shadows_check(*, now: datetime | None = None) -> list[RoleChange]:
    """With ``ML_SHADOW_TO_CANARY``, move each shadow that is no worse than the champion on the
    same payments to canary at ``ML_SHADOW_CANARY_SHARE`` of the cards: at least
    ``ML_SHADOW_MIN_SAMPLE`` payments compared, no guardrail breached (flags and declines,
    ``ml.canary``), and, with at least ``min_positives`` frauds among the labelled ones, an
    average precision no lower than the champion's by more than ``ML_SHADOW_AP_TOLERANCE``.
    Return the moves recorded."""
    if not settings.ML_SHADOW_TO_CANARY:
        return []
    champion = deployment_champion()
    active = {d.model_version: d for d in deployments_active()}
    kept = set(previous_champions(active))  # a predecessor kept for a rollback is no candidate
    shadows = [
        d
        for d in active.values()
        if d.role == Deployment.Role.SHADOW and d.model_version not in kept
    ]
    if champion is None or not shadows:
        return []
    now = now or scored_event_time_latest()
    if now is None:
        return []
    maturity = timedelta(days=settings.ML_CHARGEBACK_MATURITY_DAYS)
    rules = guardrails()
    moved = []
    for shadow in shadows:
        report = shadow_of(shadow.model_version, now=now, maturity=maturity)
        if report["payments"] < settings.ML_SHADOW_MIN_SAMPLE:
            continue
        n = report["payments"]
        mine = Figures(
            n,
            round(report["flagged"]["shadow"] * n),
            round(report["declined"]["shadow"] * n),
            0,
            None,
        )
        base = Figures(
            n,
            round(report["flagged"]["champion"] * n),
            round(report["declined"]["champion"] * n),
            0,
            None,
        )
        if breaches(mine, base, rules):
            continue
        ap, champion_ap = (
            report["shadow"]["average_precision"],
            report["champion"]["average_precision"],
        )
        if report["frauds"] >= MIN_POSITIVES and (
            ap is None or champion_ap is None or ap < champion_ap - settings.ML_SHADOW_AP_TOLERANCE
        ):
            continue
        model_promote(
            version=shadow.model_version,
            role=Deployment.Role.CANARY,
            canary_share=settings.ML_SHADOW_CANARY_SHARE,
            reason=f"moved from shadow: no worse than the champion on {n:,} payments",
            figures=report,
        )
        moved.append(_latest_change(shadow.model_version))
    return moved


def champion_check(*, now: datetime | None = None) -> list[RoleChange]:
    """Roll the champion back to its predecessor (kept as a shadow, ``model_promote``) when, on
    the labelled payments both scored (``ml.selectors.shadow_of``, at least
    ``ML_CHAMPION_MIN_FRAUDS`` frauds), the champion's recall at its decisions is below
    ``ML_CHAMPION_MIN_RECALL`` while the predecessor's is higher and its average precision no
    lower. The champion is retired. Return the changes recorded."""
    champion = deployment_champion()
    active = {d.model_version: d for d in deployments_active()}
    kept = previous_champions(active)
    if champion is None or not kept:
        return []
    now = now or scored_event_time_latest()
    if now is None:
        return []
    maturity = timedelta(days=settings.ML_CHARGEBACK_MATURITY_DAYS)
    previous = kept[0]
    report = shadow_of(previous, now=now, maturity=maturity)
    if report.get("frauds", 0) < settings.ML_CHAMPION_MIN_FRAUDS:
        return []
    mine, theirs = report["champion"], report["shadow"]
    floor = settings.ML_CHAMPION_MIN_RECALL
    if mine["recall"] is None or mine["recall"] >= floor:
        return []
    if theirs["recall"] is None or theirs["recall"] <= mine["recall"]:
        return []
    if (theirs["average_precision"] or 0.0) < (mine["average_precision"] or 0.0):
        return []
    before = RoleChange.objects.order_by("-id").values_list("id", flat=True).first() or 0
    model_promote(
        version=previous,
        reason=(
            f"rolled back to it: the champion's recall {mine['recall']:.2f} was below its floor "
            f"{floor:.2f} on {report['labelled']:,} labelled payments ({report['frauds']} "
            f"fraud), the previous champion's {theirs['recall']:.2f}"
        ),
        figures=report,
        keep_previous=False,
    )
    # The predecessor made champion, the champion retired: this promotion's two records.
    return list(
        RoleChange.objects.filter(
            id__gt=before, model_version__in=[previous, champion.model_version]
        ).order_by("id")
    )
