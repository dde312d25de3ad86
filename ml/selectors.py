"""Reads of the ml room: labels, model versions and what is deployed (through
``fraud.selectors``), and the figures the learning loop's triggers read."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from django.db.models import Max

from features.definitions import FEATURE_SERVICES
from fraud.models import AUTHORIZATION
from fraud.scoring import record_names
from fraud.selectors import (
    FLAGGED,
    decisions_by_model,
    decisions_of,
    decisions_on,
    deployment_champion,
    deployment_champion_exists,
    deployments_active,
    scores_newest,
    scores_recent,
    served_newest,
    shadow_pairs,
)
from ml.bandit import Arm
from ml.drift import drift_report
from ml.labels import CHARGEBACK, REVIEW, labels_table, resolved_frame
from ml.models import (
    Experiment,
    ExperimentArm,
    Label,
    LabelEvidence,
    ModelVersion,
    RoleChange,
    TrainingRun,
    TriggerFiring,
)
from ml.shadow import shadow_report


def champion_get(*, checkpoint: str = AUTHORIZATION) -> ModelVersion | None:
    """Return the model version deployed as champion of ``checkpoint``, ``None`` when there is
    none (or it was not registered here)."""
    deployment = deployment_champion(checkpoint=checkpoint)
    if deployment is None:
        return None
    return ModelVersion.objects.filter(version=deployment.model_version).first()


def logs_cut(model: ModelVersion | None) -> datetime | None:
    """Return the instant ``model`` was trained at on the logged vectors (its training run's
    cut, else its data end); ``None`` when it learned from none of them (no model, or one
    trained on a simulator history: another world)."""
    if model is None or model.source != ModelVersion.Source.LOGS:
        return None
    cut = (
        TrainingRun.objects.filter(model=model)
        .order_by("as_of")
        .values_list("as_of", flat=True)
        .first()
    )
    return cut or model.data_end


def champion_exists(*, checkpoint: str = AUTHORIZATION) -> bool:
    """Return whether a model is deployed as champion of ``checkpoint``."""
    return deployment_champion_exists(checkpoint=checkpoint)


def labels_as_of(*, as_of: datetime | None = None) -> pd.DataFrame:
    """Return the payments' labels as they were known at ``as_of`` (``ml.labels.LABEL_COLUMNS``;
    default: now, the ``Label`` table as it stands): each payment's evidence known by then,
    resolved by the same rule, so a replayed or simulated clock sees what a live one did."""
    if as_of is None:
        rows = Label.objects.order_by("payment_id").values_list(
            "payment_id", "fraud", "source", "known_at", "contradicted"
        )
        return labels_table(
            (payment_id, int(fraud), source, known_at, contradicted)
            for payment_id, fraud, source, known_at, contradicted in rows.iterator(chunk_size=5000)
        )
    rows = LabelEvidence.objects.filter(known_at__lte=as_of).order_by("payment_id")
    return resolved_frame((row.payment_id, row.as_evidence()) for row in rows.iterator(5000))


def training_cut_latest() -> datetime | None:
    """Return the cut (``as_of``) of the latest training not failed, else the champion's data
    end; ``None`` when there is neither."""
    cut = (
        TrainingRun.objects.exclude(status=TrainingRun.Status.FAILED)
        .order_by("-as_of")
        .values_list("as_of", flat=True)
        .first()
    )
    if cut is not None:
        return cut
    champion = champion_get()
    return champion.data_end if champion is not None else None


def fine_tune_cut_latest() -> datetime | None:
    """Return the cut of the latest fine-tune asked for and not failed, ``None`` when none."""
    return (
        TrainingRun.objects.filter(requested_kind=TrainingRun.Kind.FINE_TUNE)
        .exclude(status=TrainingRun.Status.FAILED)
        .order_by("-as_of")
        .values_list("as_of", flat=True)
        .first()
    )


def labels_known_count(*, since: datetime | None, until: datetime) -> int:
    """Return how many payments' labels became known after ``since`` (None: ever) up to
    ``until``."""
    labels = Label.objects.filter(known_at__lte=until)
    if since is not None:
        labels = labels.filter(known_at__gt=since)
    return labels.count()


def review_precision(*, since: datetime, until: datetime) -> tuple[float | None, int]:
    """Return the share of analysts' decisions known in (``since``, ``until``] that confirmed
    fraud (the precision of the payments sent for review) and how many decisions there were."""
    decided = LabelEvidence.objects.filter(
        source=REVIEW, known_at__gt=since, known_at__lte=until
    ).values_list("fraud", flat=True)
    found = list(decided)
    return (sum(found) / len(found) if found else None), len(found)


def chargeback_recall(*, since: datetime, until: datetime) -> tuple[float | None, int]:
    """Return the share of payments a fraud chargeback known in (``since``, ``until``] proved
    fraud that the scorer had flagged (review or decline), and how many such payments were
    scored."""
    payments = LabelEvidence.objects.filter(
        source=CHARGEBACK, fraud=True, known_at__gt=since, known_at__lte=until
    ).values_list("payment_id", flat=True)
    decisions = decisions_of(payment_ids=set(payments))
    if not decisions:
        return None, 0
    flagged = sum(decision in FLAGGED for decision in decisions.values())
    return flagged / len(decisions), len(decisions)


def drift_of(
    model: ModelVersion, *, since: datetime, limit: int, service: str | None = None
) -> tuple[dict[str, float], int]:
    """Return the PSI of the score and of each input of ``model`` over the newest ``limit``
    payments scored since ``since`` against the model's training reference (``ml.drift``),
    largest first, and how many payments that was; nothing when the model has no reference."""
    reference = model.metrics.get("reference")
    if not reference:
        return {}, 0
    columns = _served_columns(
        scores_recent(since=since, limit=limit), service or model.feature_service
    )
    found = drift_report(reference, {n: v for n, v in columns.items() if v})
    return found, len(columns["score"])


def _served_columns(rows, service: str) -> dict[str, list]:
    """Return the score and each input of ``service`` of ``rows`` (score, served vector record)
    by name. A record names the service it was served for (``FRAUD_SERVICE`` may have
    changed since): its values are read by that service's names, and an input it did not
    serve is left out of its row."""
    stored, on_demand = record_names(service)
    columns: dict[str, list] = {name: [] for name in (*stored, *on_demand, "score")}
    for score, record in rows:
        columns["score"].append(score)
        names = record_names(record.get("service", service))
        for part, key in zip(names, ("values", "on_demand"), strict=True):
            for name, value in zip(part, record.get(key, ()), strict=False):
                if name in columns:
                    columns[name].append(_number(value))
    return columns


def drift_over_time(
    model: ModelVersion,
    *,
    limit: int,
    period: str = "h",
    min_sample: int = 50,
    service: str | None = None,
) -> list[tuple[datetime, int, dict[str, float]]]:
    """Return, per ``period`` of the newest ``limit`` payments scored (oldest first), its start,
    its payments and the PSI of the score and of each input of ``model`` against its training
    reference; periods with fewer than ``min_sample`` payments are left out (the index of a
    few draws is noise). Nothing when the model has no reference."""
    reference = model.metrics.get("reference")
    if not reference:
        return []
    rows = served_newest(limit=limit)
    by_period: dict[pd.Timestamp, list] = {}
    for score, record, at in rows:
        by_period.setdefault(pd.Timestamp(at).floor(period), []).append((score, record))
    found = []
    for start in sorted(by_period):
        members = by_period[start]
        if len(members) < min_sample:
            continue
        columns = _served_columns(members, service or model.feature_service)
        psi = drift_report(reference, {n: v for n, v in columns.items() if v})
        found.append((start.to_pydatetime(), len(members), psi))
    return found


def _number(value) -> float:
    return float("nan") if value is None else float(value)


def triggers_last_started() -> dict[str, datetime]:
    """Return, per trigger, the event time at which it last started a training."""
    rows = (
        TriggerFiring.objects.filter(started=True)
        .values("trigger")
        .annotate(latest=Max("event_time"))
        .values_list("trigger", "latest")
    )
    return dict(rows)


def bandit_evidence(experiment: Experiment, *, now: datetime, maturity: timedelta) -> list[Arm]:
    """Return each arm's evidence (``arm_evidence``, in the order of the experiment's arms)
    from the payments decided since the experiment began."""
    return arm_evidence(
        list(experiment.arms.order_by("id").values_list("model_version", flat=True)),
        after_score_id=experiment.after_score_id,
        since=experiment.started_at,
        now=now,
        maturity=maturity,
    )


def arm_evidence(
    versions: list[str],
    *,
    after_score_id: int,
    since: datetime,
    now: datetime,
    maturity: timedelta,
) -> list[Arm]:
    """Return each of ``versions``' evidence (``ml.bandit.Arm``, in that order) at event time
    ``now`` from the payments it decided after score ``after_score_id`` (scored at wall time
    ``since`` or later): its flags and approvals; a flag's reward once the payment has a label
    (an analyst's decision or a chargeback: ``Label``, contradictions resolved); an approval's
    once ``maturity`` old, 0 when a fraud chargeback is known by then for it, else 1.

    Only labels written since ``since`` can be of those payments, so only those are read; the
    flags are few (a few in a hundred payments), the frauds fewer."""
    after = after_score_id
    labels = Label.objects.filter(updated_at__gte=since)
    decided = decisions_by_model(models=versions, after_id=after)
    matured = decisions_by_model(models=versions, after_id=after, occurred_before=now - maturity)
    flags = decisions_on(models=versions, after_id=after, flagged=True)
    fraud_of = dict(
        labels.filter(payment_id__in=[p for p, _, _ in flags]).values_list("payment_id", "fraud")
    )
    frauds = labels.filter(fraud=True, known_at__lte=now).values_list("payment_id", flat=True)
    missed = decisions_on(
        models=versions,
        after_id=after,
        payment_ids=list(frauds),
        flagged=False,
        occurred_before=now - maturity,
    )
    arms = []
    for version in versions:
        right = sum(1 for p, m, _ in flags if m == version and fraud_of.get(p) is True)
        wrong = sum(1 for p, m, _ in flags if m == version and fraud_of.get(p) is False)
        missed_here = sum(1 for _, m, _ in missed if m == version)
        arms.append(
            Arm(
                version,
                flagged=decided.get((version, True), 0),
                approved=decided.get((version, False), 0),
                flag_right=right,
                flag_wrong=wrong,
                approval_right=matured.get((version, False), 0) - missed_here,
                approval_wrong=missed_here,
            )
        )
    return arms


def console_models(*, limit: int = 200) -> tuple[list[ModelVersion], int]:
    """Return the newest ``limit`` model versions, each with ``role`` and ``share`` (its
    deployment's, "" and 0 when not deployed) and ``checkpoint`` (its feature service's), and
    how many there are in all."""
    deployed = {d.model_version: d for d in deployments_active(checkpoint=None)}
    models = list(ModelVersion.objects.select_related("parent").order_by("-created_at")[:limit])
    for model in models:
        deployment = deployed.get(model.version)
        model.role = deployment.role if deployment else ""
        model.share = deployment.canary_share if deployment else 0.0
        service = FEATURE_SERVICES.get(model.feature_service)
        model.checkpoint = service.checkpoint if service else AUTHORIZATION
    return models, ModelVersion.objects.count()


def role_history(*, limit: int = 30) -> list[RoleChange]:
    """Return the newest ``limit`` changes of a model's role, newest first."""
    return list(RoleChange.objects.order_by("-id")[:limit])


def bandit_latest() -> Experiment | None:
    """Return the newest bandit (running or not), ``None`` when none ever ran."""
    return Experiment.objects.order_by("-id").first()


def shadow_of(
    version: str,
    *,
    now: datetime,
    maturity: timedelta,
    limit: int = 20000,
    per_hour: bool = False,
) -> dict[str, Any]:
    """Return the shadow report (``ml.shadow.shadow_report``) of shadow model ``version``
    against the champion over the newest ``limit`` payments both scored, outcomes counted once
    the payment is past ``maturity`` at event time ``now`` (its label, else "legitimate");
    with ``per_hour``, also ``per_hour``: the same payments by hour (``_shadow_hours``).

    Not before, even when an analyst decided it: the payments the champion flagged are the
    ones decided within minutes, and counted then they would judge the shadow on the
    champion's flags alone, and the champion's flags against a shadow's only at maturity
    (``benchmarks.online_evaluation``: a pick after 122 outcomes)."""
    pairs = shadow_pairs(version=version, limit=limit)
    known = _fraud_labels([p[0] for p in pairs])
    matured = now - maturity
    labels = [(float(known.get(p[0], False)) if p[1] <= matured else float("nan")) for p in pairs]
    report = _shadow_report_of(pairs, labels)
    if per_hour:
        report["per_hour"] = _shadow_hours(pairs, labels)
    return report


def _shadow_report_of(pairs: list[tuple], labels: list[float]) -> dict[str, Any]:
    def column(i: int, kind: Any = float) -> np.ndarray:
        if kind is float:
            return np.array([np.nan if p[i] is None else p[i] for p in pairs], dtype=float)
        return np.array([p[i] for p in pairs], dtype=kind)

    return shadow_report(
        champion_scores=column(2),
        champion_decisions=column(3, object),
        shadow_scores=column(4),
        shadow_decisions=column(5, object),
        labels=np.array(labels, dtype=float),
        champion_us=column(6),
        shadow_us=column(7),
    )


def _shadow_hours(pairs: list[tuple], labels: list[float]) -> list[dict[str, Any]]:
    """Return, per hour of ``pairs`` (``fraud.selectors.shadow_pairs``; oldest first): its
    start, the payments, the share with the same decision and each model's flagged share (what
    is known at once, with no outcome), and the hour's report (``ml.shadow.shadow_report``:
    the outcomes once its payments are past maturity, the prediction times)."""
    by_hour: dict[pd.Timestamp, list[int]] = {}
    for i, pair in enumerate(pairs):
        by_hour.setdefault(pd.Timestamp(pair[1]).floor("h"), []).append(i)
    found = []
    for start in sorted(by_hour):
        rows = by_hour[start]
        report = _shadow_report_of([pairs[i] for i in rows], [labels[i] for i in rows])
        found.append(
            {
                "period": start.isoformat(),
                "start": start.to_pydatetime(),
                "payments": len(rows),
                "agreement": report["agreement"],
                "flagged_champion": report["flagged"]["champion"],
                "flagged_shadow": report["flagged"]["shadow"],
                "report": report,
            }
        )
    return found


def _fraud_labels(payment_ids: list[str], chunk: int = 5000) -> dict[str, bool]:
    """Return whether each of ``payment_ids`` that has a label proved fraud, read ``chunk`` ids
    a query (a query's parameters are bounded)."""
    known: dict[str, bool] = {}
    for start in range(0, len(payment_ids), chunk):
        known.update(
            Label.objects.filter(payment_id__in=payment_ids[start : start + chunk]).values_list(
                "payment_id", "fraud"
            )
        )
    return known


def canary_since(version: str) -> RoleChange | None:
    """Return the change that made ``version`` a canary last, ``None`` when none did."""
    return RoleChange.objects.filter(model_version=version, role="canary").order_by("-id").first()


def bandit_arms_running() -> set[str]:
    """Return the model versions that are arms of the running bandit (none: empty)."""
    return set(
        ExperimentArm.objects.filter(experiment__status=Experiment.Status.RUNNING).values_list(
            "model_version", flat=True
        )
    )


def trainings_recent(*, limit: int) -> list[TrainingRun]:
    """Return the newest ``limit`` trainings asked for, newest first, with their models."""
    return list(TrainingRun.objects.select_related("model").order_by("-id")[:limit])


def trigger_firings_recent(*, limit: int) -> list[TriggerFiring]:
    """Return the newest ``limit`` trigger firings, newest first."""
    return list(TriggerFiring.objects.order_by("-id")[:limit])


def performance_of(
    *, now: datetime, maturity: timedelta, limit: int = 50000
) -> tuple[pd.DataFrame, str]:
    """Return the newest ``limit`` scores as the frame ``ml.performance.performance_table``
    reads (labels as known; "legitimate" past ``maturity`` at event time ``now``; unknown
    before) and its period: an hour when they span less than three days, else a day."""
    rows = scores_newest(limit=limit)
    columns = [
        "payment_id", "model_version", "occurred_at", "decision", "score", "card_id", "latency_ms",
    ]  # fmt: skip
    frame = pd.DataFrame(rows, columns=columns)
    if frame.empty:
        return frame.assign(label=pd.Series(dtype=float)), "h"
    known = _fraud_labels(frame["payment_id"].tolist())
    occurred = pd.to_datetime(frame["occurred_at"], utc=True)
    matured = occurred <= pd.Timestamp(now - maturity)
    label = frame["payment_id"].map(known).astype("float")
    frame["label"] = label.where(label.notna() | ~matured, 0.0)
    span = occurred.max() - occurred.min()
    return frame, ("h" if span < pd.Timedelta(days=3) else "D")


def model_lineage(model: ModelVersion) -> list[ModelVersion]:
    """Return ``model`` and its parents, newest first, to the full retrain that began the
    chain (at most 50: a chain of fine-tunes is bounded far below that)."""
    chain = [model]
    while chain[-1].parent_id is not None and len(chain) < 50:
        chain.append(ModelVersion.objects.get(pk=chain[-1].parent_id))
    return chain


def model_history(version: str) -> list[RoleChange]:
    """Return every change of ``version``'s role, newest first."""
    return list(RoleChange.objects.filter(model_version=version).order_by("-id"))


def model_training(model: ModelVersion) -> TrainingRun | None:
    """Return the training that registered ``model`` (the first, when redelivered), if any."""
    return TrainingRun.objects.filter(model=model).order_by("id").first()
