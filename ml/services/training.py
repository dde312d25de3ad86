"""Writes of training runs: ask for a training, run it (full or fine-tune), record its progress."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta

import lightgbm as lgb
import pandas as pd
from celery import current_app
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from features.definitions import FEATURE_SERVICES
from features.store import FeatureConfig
from fraud.models import AUTHORIZATION
from fraud.scorer.settings import checkpoint_service
from fraud.selectors import deployment_champion
from ml.datasets import logged_dataset
from ml.labels import ASSUMED_NEGATIVE
from ml.metrics import TRAINING_SECONDS
from ml.models import ModelVersion, TrainingRun
from ml.registry import model_load
from ml.selectors import champion_get, labels_as_of
from ml.services.registry import candidate_register, champion_unseen, model_promote
from ml.train import (
    ChainBounds,
    TrainParams,
    constant_inputs,
    dataset_profile,
    fine_tune_batch,
    fine_tune_refusal,
    model_features,
    train_model,
)

# Below these, a model learns nothing worth gating: the run fails saying so.
MIN_ROWS = 100
MIN_POSITIVES = 5


def training_request(
    *,
    kind: str = TrainingRun.Kind.FULL,
    reason: str = "manual",
    as_of: datetime | None = None,
    request_key: str | None = None,
    queue: bool = True,
    checkpoint: str = AUTHORIZATION,
) -> tuple[TrainingRun, bool]:
    """Ask for a training of ``checkpoint``'s scoring model (``kind`` full or fine_tune, on the
    data as of ``as_of``, default now: its feature service's logged vectors and their labels)
    and queue it on the ``training`` queue once committed; return the run and whether it was
    created.

    At most one training of a checkpoint runs at a time: while a queued or running one is
    alive (heard from within ``ML_TRAINING_STALE_SECONDS``), that one is returned and nothing
    is queued. A ``request_key`` asked for before returns its run and queues nothing
    (idempotency key; default: a new one). Without ``queue`` nothing is queued: the caller
    runs it (``training_run``)."""
    if request_key is not None:
        existing = TrainingRun.objects.filter(request_key=request_key).first()
        if existing is not None:
            return existing, False
    alive = timezone.now() - timedelta(seconds=settings.ML_TRAINING_STALE_SECONDS)
    service = checkpoint_service(checkpoint)
    with transaction.atomic():
        active = (
            TrainingRun.objects.select_for_update()
            .filter(
                feature_service=service,
                status__in=[TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING],
                updated_at__gte=alive,
            )
            .first()
        )
        if active is not None:
            return active, False
        run = TrainingRun.objects.create(
            request_key=request_key or f"{reason}-{kind}-{uuid.uuid4().hex}",
            requested_kind=kind,
            kind=kind,
            reason=reason,
            feature_service=service,
            as_of=as_of or timezone.now(),
        )
        key = run.request_key
        if queue:
            transaction.on_commit(lambda: current_app.send_task("ml.tasks.train_run", args=[key]))
    return run, True


def _progress(run: TrainingRun, stage: str, percent: int) -> None:
    TrainingRun.objects.filter(pk=run.pk).update(
        stage=stage, percent=percent, updated_at=timezone.now()
    )


def training_run(*, request_key: str) -> TrainingRun:
    """Run the training ``request_key`` asked for (``training_request``) and register its
    model; return the run. Not deployed (the offline gates come first).

    Idempotent: a run that registered its model returns at once; one whose worker died
    mid-way runs again from the start on the same data (cut at the run's ``as_of``), and
    training is deterministic, so it registers the same bytes: one model version per request.
    A fine-tune trains a replica of the champion (loaded from its file, never the serving
    booster) on the newest ``ML_FINE_TUNE_ROWS`` matured rows; with no champion, a champion of
    other features, or a chain past its bounds, a full retrain runs instead and the run's note
    says why. Failure: the run is marked failed with the error, which is raised."""
    run = TrainingRun.objects.get(request_key=request_key)
    if run.model_id is not None:
        return run
    started = time.thread_time()
    wall = time.monotonic()
    TrainingRun.objects.filter(pk=run.pk).update(
        status=TrainingRun.Status.RUNNING,
        stage="reading the training set",
        percent=5,
        attempts=run.attempts + 1,
        started_at=timezone.now(),
        error="",
    )
    try:
        model = _train(run)
        promoted = _promote_if_approved(model)
    except Exception as exc:
        TrainingRun.objects.filter(pk=run.pk).update(
            status=TrainingRun.Status.FAILED,
            stage="failed",
            error=f"{type(exc).__name__}: {exc}",
            finished_at=timezone.now(),
            cpu_seconds=time.thread_time() - started,
        )
        _training_timed(run, "failed", time.monotonic() - wall)
        raise
    TrainingRun.objects.filter(pk=run.pk).update(
        status=TrainingRun.Status.REGISTERED,
        stage="registered",
        percent=100,
        model=model,
        finished_at=timezone.now(),
        cpu_seconds=time.thread_time() - started,
    )
    run.refresh_from_db()
    _training_timed(run, "registered", time.monotonic() - wall)
    if promoted and promoted not in run.note:
        run.note = "; ".join(filter(None, [run.note, promoted]))
        TrainingRun.objects.filter(pk=run.pk).update(note=run.note)
    return run


def _training_timed(run: TrainingRun, outcome: str, seconds: float) -> None:
    """Count a run's wall time in ``ml_training_seconds`` (``ml.metrics``)."""
    checkpoint = FEATURE_SERVICES[run.feature_service].checkpoint
    TRAINING_SECONDS.labels(checkpoint, run.kind, outcome).observe(seconds)


def _promote_if_approved(model: ModelVersion) -> str:
    """With ``ML_PROMOTE_APPROVED``, deploy ``model`` as champion when the offline gates
    approved it, at the champion's thresholds (``model_promote``); return
    what was done, in words ("" when nothing was). Idempotent (a redelivered run promotes the
    same version again: a no-op). Until the online path (shadow, canary) decides promotions,
    this is how the demo's loop closes."""
    if not settings.ML_PROMOTE_APPROVED or model.status != "approved":
        return ""
    current = deployment_champion(checkpoint=FEATURE_SERVICES[model.feature_service].checkpoint)
    if current is not None and current.model_version == model.version:
        return "promoted to champion"  # by this run, before its worker died
    model_promote(
        version=model.version, reason="approved by the offline gates (ML_PROMOTE_APPROVED)"
    )
    was = current.model_version if current else "none"
    return f"promoted to champion (replacing {was})"


def _train(run: TrainingRun) -> ModelVersion:
    # The run's own service: a checkpoint's model learns from that checkpoint's served vectors.
    service = run.feature_service
    checkpoint = FEATURE_SERVICES[service].checkpoint
    features = model_features(service)
    maturity = timedelta(days=settings.ML_CHARGEBACK_MATURITY_DAYS)
    # Every payment logged by then, read once; the young ones nobody labelled yet are left out
    # (log and wait).
    logged = logged_dataset(
        FeatureConfig.from_settings(),
        labels=labels_as_of(as_of=run.as_of),
        as_of=run.as_of,
        detail=False,
        service=service,
    )
    young = (logged["label_source"] == ASSUMED_NEGATIVE) & (
        logged["request_time"] > pd.Timestamp(run.as_of - maturity)
    )
    frame = logged[~young].reset_index(drop=True)
    parent = champion_get(checkpoint=checkpoint)
    kind, note = run.requested_kind, ""
    init_model = None
    if kind == TrainingRun.Kind.FINE_TUNE:
        replica = None
        if parent is not None and list(parent.feature_names) == features:
            replica = model_load(parent.version)
        note = _fine_tune_refusal(parent, replica, run.as_of) or ""
        if note:
            kind = TrainingRun.Kind.FULL
        else:
            init_model = replica
    start = pd.Timestamp(run.as_of - timedelta(days=settings.ML_TRAIN_WINDOW_DAYS))
    frame = frame[frame["request_time"] >= start]
    constant = None  # a full retrain's: its training set's (the profile's)
    if kind == TrainingRun.Kind.FINE_TUNE:
        # The training-data gate asks whether an input stopped varying in the data (a broken
        # join), not in a fine-tune's micro-batch, where a rare one (declines) often does not.
        constant = constant_inputs(frame, features)
        frame = fine_tune_batch(
            frame,
            settings.ML_FINE_TUNE_ROWS,
            replay=settings.ML_FINE_TUNE_REPLAY_ROWS,
            time_column="request_time",
        )
        params = TrainParams(num_boost_round=settings.ML_FINE_TUNE_ROUNDS)
    else:
        params = TrainParams(num_boost_round=settings.ML_FULL_ROUNDS)
    profile = dataset_profile(frame, features, time_column="request_time")
    if profile["rows"] < MIN_ROWS or profile["positives"] < MIN_POSITIVES:
        raise ValueError(
            f"the training set has {profile['rows']} rows, {profile['positives']} of them fraud: "
            f"too few to train on (at least {MIN_ROWS} rows and {MIN_POSITIVES} fraud)"
        )
    TrainingRun.objects.filter(pk=run.pk).update(
        kind=kind,
        note=note,
        dataset=profile,
        parent=parent if init_model is not None else None,
        stage="training",
        percent=10,
        updated_at=timezone.now(),
    )
    result = train_model(
        frame,
        features=features,
        time_column="request_time",
        params=params,
        init_model=init_model,
        unseen=champion_unseen(frame, parent, maturity=maturity),
        progress=lambda share: _progress(run, "training", 10 + int(share * 80)),
    )
    _progress(run, "registering and gating", 95)
    return candidate_register(
        result=result,
        frame=frame,
        time_column="request_time",
        source=ModelVersion.Source.LOGS,
        parent=parent if init_model is not None else None,
        kind=kind,
        profile=profile,
        constant=constant,
        service=service,
    )


def _fine_tune_refusal(
    parent: ModelVersion | None, replica: lgb.Booster | None, as_of: datetime
) -> str | None:
    """Return why the champion (``parent``, its booster loaded as ``replica`` when it reads
    the service's features) cannot be fine-tuned now (a full retrain runs instead)."""
    if parent is None:
        return "no champion to fine-tune: a full retrain instead"
    if replica is None:
        return "the champion reads other features: a full retrain instead"
    root = parent
    while root.kind == TrainingRun.Kind.FINE_TUNE and root.parent is not None:
        root = root.parent
    refusal = fine_tune_refusal(
        parent_trees=replica.num_trees(),
        added_trees=settings.ML_FINE_TUNE_ROUNDS,
        chain_start=root.data_end,
        as_of=as_of,
        bounds=ChainBounds(
            max_trees=settings.ML_FINE_TUNE_MAX_TREES,
            max_age=timedelta(hours=settings.ML_FINE_TUNE_MAX_AGE_HOURS),
        ),
    )
    return f"{refusal}: a full retrain instead" if refusal else None
