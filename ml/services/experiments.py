"""Writes of online evaluation: start, update and stop a Thompson-sampling bandit between the
champion and approved candidates (``ml.bandit`` for the statistics, ``ml.models.Experiment``
for what is kept).

The arms are deployments: the champion, and each candidate as a canary deciding for its share
of cards (``fraud.decisions.canary_for``: a card keeps its model while the shares stay, and
moves only when they move past it). Nothing lives in the scorer: the evidence is read again
from the scores and the labels at every update, so a scorer or worker killed mid-experiment
loses none of it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from fraud.models import Deployment
from fraud.selectors import (
    deployment_champion,
    deployments_active,
    score_id_latest,
    scored_event_time_latest,
)
from ml.bandit import thompson
from ml.metrics import bandit_measured
from ml.models import Experiment, ExperimentArm, ModelVersion
from ml.selectors import bandit_evidence
from ml.services.registry import deployment_retire, model_promote


class ExperimentRefused(ValueError):
    """An experiment could not start or change; the message says why."""


def bandit_start(
    *,
    candidates: Sequence[str],
    floor: float | None = None,
    confidence: float | None = None,
    min_samples: int | None = None,
) -> Experiment:
    """Start a bandit between the champion and ``candidates`` (approved model versions): deploy
    each as a canary, every arm at an equal share to begin with. Raise ``ExperimentRefused``
    (nothing written) when there is no champion, a candidate is not approved or is the
    champion, or a bandit already runs. Defaults: ``ML_BANDIT_*``."""
    floor = settings.ML_BANDIT_FLOOR if floor is None else floor
    confidence = settings.ML_BANDIT_CONFIDENCE if confidence is None else confidence
    min_samples = settings.ML_BANDIT_MIN_SAMPLES if min_samples is None else min_samples
    champion = deployment_champion()
    if champion is None:
        raise ExperimentRefused("no champion to compare with")
    names = list(dict.fromkeys(candidates))
    if not names:
        raise ExperimentRefused("name at least one candidate")
    if champion.model_version in names:
        raise ExperimentRefused(f"{champion.model_version} is the champion")
    found = {m.version: m for m in ModelVersion.objects.filter(version__in=names)}
    for name in names:
        model = found.get(name)
        if model is None:
            raise ExperimentRefused(f"no model version {name}")
        if model.status != "approved":
            raise ExperimentRefused(f"{name} is {model.status}: only an approved model may serve")
    if not 0 <= floor * (len(names) + 1) <= 1:
        raise ExperimentRefused(f"a floor of {floor} leaves nothing for {len(names) + 1} arms")
    share = 1 / (len(names) + 1)
    try:
        with transaction.atomic():
            experiment = Experiment.objects.create(
                champion=champion.model_version,
                after_score_id=score_id_latest(),
                floor=floor,
                confidence=confidence,
                min_samples=min_samples,
            )
            for version in [champion.model_version, *names]:
                ExperimentArm.objects.create(
                    experiment=experiment, model_version=version, share=share
                )
            for version in names:
                _deploy(
                    version,
                    Deployment.Role.CANARY,
                    share,
                    f"an arm of bandit {experiment.pk}",
                )
    except IntegrityError as exc:
        raise ExperimentRefused("a bandit is already running: stop it first") from exc
    return experiment


def bandit_update(*, now: datetime | None = None) -> Experiment | None:
    """Update the running bandit, if any, at event time ``now`` (default: the newest payment
    scored): read each arm's evidence (``ml.selectors.bandit_evidence``), and either promote
    the arm that is the best with the experiment's confidence (champion at the thresholds
    it decided with, the other candidates retired; ``decided``) or set each canary's share by its
    chance of being the best. Stop it when its champion was replaced meanwhile, or a candidate
    is no longer a canary (a guardrail rolled it back). Return it."""
    with transaction.atomic():
        experiment = (
            Experiment.objects.select_for_update().filter(status=Experiment.Status.RUNNING).first()
        )
        if experiment is None:
            return None
        champion = deployment_champion()
        if champion is None or champion.model_version != experiment.champion:
            return _end(
                experiment,
                Experiment.Status.STOPPED,
                f"stopped: the champion {experiment.champion} was replaced meanwhile",
            )
        rows = list(experiment.arms.order_by("id"))
        roles = {d.model_version: d.role for d in deployments_active()}
        lost = [r.model_version for r in rows[1:] if roles.get(r.model_version) != "canary"]
        if lost:
            return _end(
                experiment,
                Experiment.Status.STOPPED,
                f"stopped: {', '.join(lost)} no longer deployed as a canary (rolled back?)",
            )
        now = now or scored_event_time_latest() or timezone.now()
        maturity = timedelta(days=settings.ML_CHARGEBACK_MATURITY_DAYS)
        arms = bandit_evidence(experiment, now=now, maturity=maturity)
        step = thompson(
            arms,
            floor=experiment.floor,
            confidence=experiment.confidence,
            min_samples=experiment.min_samples,
            rng=np.random.default_rng([experiment.pk, experiment.updates]),
        )
        winner = step.winner
        for row, arm in zip(rows, arms, strict=True):
            for field in (
                "flagged",
                "approved",
                "flag_right",
                "flag_wrong",
                "approval_right",
                "approval_wrong",
            ):
                setattr(row, field, int(getattr(arm, field)))
            row.chance_best = step.chances[row.model_version]
            row.share = (
                step.shares[row.model_version]
                if winner is None
                else float(row.model_version == winner)
            )
            row.save()
        bandit_measured(rows)
        experiment.updates += 1
        if winner is not None:
            figures = {
                row.model_version: {"chance_best": row.chance_best, "rewards": int(arm.samples)}
                for row, arm in zip(rows, arms, strict=True)
            }
            if winner != experiment.champion:
                _deploy(
                    winner,
                    Deployment.Role.CHAMPION,
                    0.0,
                    f"won bandit {experiment.pk}",
                    figures,
                )
            experiment.winner = winner
            return _end(
                experiment,
                Experiment.Status.DECIDED,
                f"{winner} is the best with probability {step.chances[winner]:.3f} after "
                f"{sum(int(a.samples) for a in arms):,} rewards"
                + (", promoted to champion" if winner != experiment.champion else ""),
            )
        for row in rows[1:]:
            _deploy(
                row.model_version,
                Deployment.Role.CANARY,
                row.share,
                f"an arm of bandit {experiment.pk}",
            )
        experiment.save(update_fields=["updates", "updated_at"])
        return experiment


def bandit_stop(*, note: str = "stopped by hand") -> Experiment:
    """Stop the running bandit: its candidates retired, the champion left as it is. Raise
    ``ExperimentRefused`` when none runs."""
    with transaction.atomic():
        experiment = (
            Experiment.objects.select_for_update().filter(status=Experiment.Status.RUNNING).first()
        )
        if experiment is None:
            raise ExperimentRefused("no bandit is running")
        return _end(experiment, Experiment.Status.STOPPED, note)


def _end(experiment: Experiment, status: str, note: str) -> Experiment:
    """Retire the experiment's candidates still deployed as canaries; record how it ended."""
    candidates = set(
        experiment.arms.exclude(model_version=experiment.champion).values_list(
            "model_version", flat=True
        )
    )
    for deployment in deployments_active():
        if deployment.model_version in candidates and deployment.role == Deployment.Role.CANARY:
            deployment_retire(deployment=deployment, reason=f"bandit {experiment.pk} {status}")
    experiment.status, experiment.note = status, note
    experiment.decided_at = timezone.now()
    experiment.save()
    return experiment


def _deploy(
    version: str, role: str, share: float, reason: str, figures: dict | None = None
) -> None:
    """Deploy ``version`` as ``role`` (at the thresholds it decides with, or its gates matched
    to the champion's alert volume: ``model_promote``)."""
    model_promote(
        version=version,
        role=role,
        canary_share=share,
        reason=reason,
        figures=figures,
    )
