"""Writes of the ml room: record labels, train a model from a dataset, register it, deploy it."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import lightgbm as lgb
import pandas as pd
from celery import current_app
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from features.repo import apply_repo
from features.store import FeatureConfig, feature_store
from fraud.artifacts import feature_names_check
from fraud.models import Deployment
from fraud.services import deployment_set
from ml.datasets import bootstrap_dataset, logged_dataset
from ml.labels import Evidence, resolve
from ml.models import Label, LabelEvidence, ModelVersion, TrainingRun
from ml.registry import code_version, model_load
from ml.selectors import champion_get, labels_as_of
from ml.train import (
    DEFAULT_THRESHOLDS,
    ChainBounds,
    TrainParams,
    dataset_profile,
    fine_tune_refusal,
    model_features,
    newest_rows,
    train_model,
)

log = logging.getLogger(__name__)

SERVICE = "fraud_scoring_v1"


def label_record(*, payment_id: str, evidence: Evidence) -> Label:
    """Record one label event for ``payment_id`` and return the payment's label, resolved
    again from all its evidence (``ml.labels.resolve``). Idempotent on ``evidence.event_id``:
    an event recorded before changes nothing. Concurrent evidence for one payment is applied
    one at a time (the payment's label row is locked). Nothing is published."""
    with transaction.atomic():
        # The label row exists before it is locked, so two first labels of a payment queue on
        # the same row instead of both inserting it.
        Label.objects.bulk_create(
            [
                Label(
                    payment_id=payment_id,
                    fraud=evidence.fraud,
                    source=evidence.source,
                    known_at=evidence.known_at,
                    evidence=0,
                )
            ],
            ignore_conflicts=True,
        )
        label = Label.objects.select_for_update().get(payment_id=payment_id)
        _, created = LabelEvidence.objects.get_or_create(
            event_id=evidence.event_id,
            defaults={
                "payment_id": payment_id,
                "source": evidence.source,
                "fraud": evidence.fraud,
                "detail": evidence.detail[:32],
                "known_at": evidence.known_at,
            },
        )
        if not created and label.evidence:
            return label
        every = [
            Evidence(
                source=row.source,
                fraud=row.fraud,
                detail=row.detail,
                known_at=row.known_at,
                event_id=str(row.event_id),
            )
            for row in LabelEvidence.objects.filter(payment_id=payment_id)
        ]
        resolved = resolve(every)
        assert resolved is not None  # the evidence just recorded, at least
        label.fraud = resolved.fraud
        label.source = resolved.source
        label.known_at = resolved.known_at
        label.contradicted = resolved.contradicted
        label.evidence = len(every)
        label.save()
        return label


def _models_dir() -> Path:
    directory = Path(settings.ML_MODELS_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory, synced and
    renamed: a reader sees the whole file or none."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def model_register(
    *,
    booster: lgb.Booster,
    feature_service: str,
    params: dict[str, Any],
    metrics: dict[str, Any],
    data_start: datetime,
    data_end: datetime,
    training_rows: int,
    source: str,
    parent: ModelVersion | None = None,
    kind: str = TrainingRun.Kind.FULL,
) -> ModelVersion:
    """Store ``booster`` as a text model and record it with its metrics and lineage; return the
    model version.

    The booster's feature names are its input columns; each must be served by
    ``feature_service``. Idempotent on the sha256 of the text model's bytes: registering the
    same model again returns the existing version and writes nothing. Side effect: the file
    ``ML_MODELS_DIR/<version>.txt``. Nothing is published; nothing is deployed
    (``model_promote`` does that).
    """
    feature_names = booster.feature_name()
    feature_names_check(feature_names, feature_service)
    data = booster.model_to_string().encode("utf-8")
    sha256 = hashlib.sha256(data).hexdigest()
    existing = ModelVersion.objects.filter(sha256=sha256).first()
    if existing is not None:
        return existing
    version = f"fraud-lgbm-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{sha256[:8]}"
    path = _models_dir() / f"{version}.txt"
    _write_atomically(path, data)
    try:
        with transaction.atomic():
            return ModelVersion.objects.create(
                version=version,
                artifact_path=str(path),
                sha256=sha256,
                feature_service=feature_service,
                feature_names=feature_names,
                params=params,
                metrics=metrics,
                data_start=data_start,
                data_end=data_end,
                training_rows=training_rows,
                code_version=code_version(),
                parent=parent,
                source=source,
                kind=kind,
            )
    except IntegrityError:
        # Registered concurrently by another process: same bytes, same model.
        return ModelVersion.objects.get(sha256=sha256)


def model_promote(
    *,
    version: str,
    role: str = Deployment.Role.CHAMPION,
    review_threshold: float = DEFAULT_THRESHOLDS["review"],
    decline_threshold: float = DEFAULT_THRESHOLDS["decline"],
    canary_share: float = 0.0,
) -> Deployment:
    """Deploy model ``version`` as ``role`` (champion, shadow, canary or retired) with its
    decision thresholds, through ``fraud.services.deployment_set``; return the deployment.

    Verify the artifact first (``model_load``): a file that no longer matches its sha256 is
    never deployed (``ModelRefused``, nothing written). Idempotent on the version. A running
    scorer picks the deployment up without restarting; nothing is published.
    """
    model = ModelVersion.objects.get(version=version)
    model_load(version)
    return deployment_set(
        model_version=model.version,
        artifact_path=model.artifact_path,
        sha256=model.sha256,
        feature_service=model.feature_service,
        feature_names=list(model.feature_names),
        role=role,
        review_threshold=review_threshold,
        decline_threshold=decline_threshold,
        canary_share=canary_share,
    )


def _label_counts(frame: pd.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in frame["label_source"].value_counts().sort_index().items()}


def model_bootstrap(
    *,
    history: Path,
    work_dir: Path,
    maturity: timedelta = timedelta(days=3),
    snapshot_every: timedelta = timedelta(hours=1),
    params: TrainParams | None = None,
    thresholds: Mapping[str, float] = DEFAULT_THRESHOLDS,
    promote: bool = True,
) -> ModelVersion:
    """Train the first model on the simulator history at ``history`` and register it; deploy
    it as champion when ``promote``. Return the model version.

    The features come from a scratch feature store under ``work_dir`` (its own Feast project,
    registry and offline files), so the history, another world than the live one, never mixes
    with the live store. Idempotent: the same history and parameters train the same bytes,
    hence the same version. Side effects: the model file, its registry row, the champion
    deployment; nothing is published.
    """
    config = FeatureConfig(
        project=f"bootstrap{uuid.uuid4().hex[:8]}",
        registry_url=f"sqlite:///{work_dir / 'feast-registry.sqlite3'}",
        online="sqlite",
        data_dir=work_dir / "features",
    )
    apply_repo(config)
    try:
        frame = bootstrap_dataset(config, history, maturity=maturity, snapshot_every=snapshot_every)
    finally:
        feature_store(config).teardown()
    result = train_model(
        frame,
        features=model_features(SERVICE),
        time_column="event_timestamp",
        params=params,
        thresholds=thresholds,
    )
    result.metrics["label_sources"] = _label_counts(frame)
    model = model_register(
        booster=result.booster,
        feature_service=SERVICE,
        params=result.params,
        metrics=result.metrics,
        data_start=result.data_start,
        data_end=result.data_end,
        training_rows=result.training_rows,
        source=ModelVersion.Source.BOOTSTRAP,
    )
    if promote:
        model_promote(
            version=model.version,
            review_threshold=thresholds["review"],
            decline_threshold=thresholds["decline"],
        )
    return model


def model_train_from_logs(
    *,
    config: FeatureConfig,
    parent: ModelVersion | None = None,
    maturity: timedelta = timedelta(days=3),
    params: TrainParams | None = None,
    thresholds: Mapping[str, float] = DEFAULT_THRESHOLDS,
) -> ModelVersion:
    """Train a model on the log-and-wait training set (``ml.datasets.logged_dataset``: logged
    features JOIN labels) and register it; return the model version. Not deployed.

    Warm-start from ``parent`` (default: the champion) when it reads the same features:
    ``params.num_boost_round`` trees are added to its own. Idempotent like
    ``model_register``: the same logs, labels and parent give the same version.
    """
    frame = logged_dataset(config, labels=labels_as_of(), maturity=maturity)
    parent = parent or champion_get()
    features = model_features(SERVICE)
    init_model = None
    if parent is not None and list(parent.feature_names) == features:
        init_model = model_load(parent.version)
    result = train_model(
        frame,
        features=features,
        time_column="request_time",
        params=params or TrainParams(num_boost_round=50),
        init_model=init_model,
        thresholds=thresholds,
    )
    result.metrics["label_sources"] = _label_counts(frame)
    return model_register(
        booster=result.booster,
        feature_service=SERVICE,
        params=result.params,
        metrics=result.metrics,
        data_start=result.data_start,
        data_end=result.data_end,
        training_rows=result.training_rows,
        source=ModelVersion.Source.LOGS,
        parent=parent if init_model is not None else None,
    )


def training_request(
    *,
    kind: str = TrainingRun.Kind.FULL,
    reason: str = "manual",
    as_of: datetime | None = None,
    request_key: str | None = None,
) -> tuple[TrainingRun, bool]:
    """Ask for a training of the scoring model (``kind`` full or fine_tune, on the data as of
    ``as_of``, default now) and queue it on the ``training`` queue once committed; return the
    run and whether it was created.

    At most one training runs at a time: while a queued or running one is alive (heard from
    within ``ML_TRAINING_STALE_SECONDS``), that one is returned and nothing is queued. A
    ``request_key`` asked for before returns its run and queues nothing (idempotency key;
    default: a new one)."""
    if request_key is not None:
        existing = TrainingRun.objects.filter(request_key=request_key).first()
        if existing is not None:
            return existing, False
    alive = timezone.now() - timedelta(seconds=settings.ML_TRAINING_STALE_SECONDS)
    with transaction.atomic():
        active = (
            TrainingRun.objects.select_for_update()
            .filter(
                feature_service=SERVICE,
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
            feature_service=SERVICE,
            as_of=as_of or timezone.now(),
        )
        key = run.request_key
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
    except Exception as exc:
        TrainingRun.objects.filter(pk=run.pk).update(
            status=TrainingRun.Status.FAILED,
            stage="failed",
            error=f"{type(exc).__name__}: {exc}",
            finished_at=timezone.now(),
            cpu_seconds=time.thread_time() - started,
        )
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
    return run


def _train(run: TrainingRun) -> ModelVersion:
    features = model_features(SERVICE)
    frame = logged_dataset(
        FeatureConfig.from_settings(),
        labels=labels_as_of(as_of=run.as_of),
        maturity=timedelta(days=settings.ML_CHARGEBACK_MATURITY_DAYS),
        as_of=run.as_of,
    )
    parent = champion_get()
    kind, note = run.requested_kind, ""
    init_model = None
    if kind == TrainingRun.Kind.FINE_TUNE:
        note = _fine_tune_refusal(parent, features, run.as_of) or ""
        if note:
            kind = TrainingRun.Kind.FULL
        else:
            init_model = model_load(parent.version)
    if kind == TrainingRun.Kind.FINE_TUNE:
        frame = newest_rows(frame, settings.ML_FINE_TUNE_ROWS, time_column="request_time")
        params = TrainParams(num_boost_round=settings.ML_FINE_TUNE_ROUNDS)
    else:
        start = pd.Timestamp(run.as_of - timedelta(days=settings.ML_TRAIN_WINDOW_DAYS))
        frame = frame[frame["request_time"] >= start]
        params = TrainParams(num_boost_round=settings.ML_FULL_ROUNDS)
    profile = dataset_profile(frame, features, time_column="request_time")
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
        progress=lambda share: _progress(run, "training", 10 + int(share * 80)),
    )
    _progress(run, "registering", 95)
    result.metrics["label_sources"] = profile["label_sources"]
    result.metrics["dataset"] = profile
    return model_register(
        booster=result.booster,
        feature_service=SERVICE,
        params=result.params,
        metrics=result.metrics,
        data_start=result.data_start,
        data_end=result.data_end,
        training_rows=result.training_rows,
        source=ModelVersion.Source.LOGS,
        parent=parent if init_model is not None else None,
        kind=kind,
    )


def _fine_tune_refusal(
    parent: ModelVersion | None, features: list[str], as_of: datetime
) -> str | None:
    """Return why the champion cannot be fine-tuned now (a full retrain runs instead)."""
    if parent is None:
        return "no champion to fine-tune: a full retrain instead"
    if list(parent.feature_names) != features:
        return "the champion reads other features: a full retrain instead"
    root = parent
    while root.kind == TrainingRun.Kind.FINE_TUNE and root.parent is not None:
        root = root.parent
    refusal = fine_tune_refusal(
        parent_trees=model_load(parent.version).num_trees(),
        added_trees=settings.ML_FINE_TUNE_ROUNDS,
        chain_start=root.data_end,
        as_of=as_of,
        bounds=ChainBounds(
            max_trees=settings.ML_FINE_TUNE_MAX_TREES,
            max_age=timedelta(hours=settings.ML_FINE_TUNE_MAX_AGE_HOURS),
        ),
    )
    return f"{refusal}: a full retrain instead" if refusal else None
