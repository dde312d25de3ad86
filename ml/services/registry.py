"""Writes of the model registry: register a model, deploy it, bootstrap the first one, retrain from
logs by hand."""

from __future__ import annotations

import hashlib
import os
import tempfile
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from django.conf import settings
from django.db import IntegrityError, transaction

from features.definitions import FEATURE_SERVICES
from features.repo import apply_repo
from features.store import FeatureConfig, feature_store
from fraud.artifacts import feature_names_check
from fraud.models import Deployment
from fraud.scorer.settings import authorization_service
from fraud.selectors import score_id_latest
from fraud.services import deployment_set, deployments_lock
from ml.datasets import bootstrap_dataset, logged_dataset
from ml.models import ModelVersion, RoleChange, TrainingRun
from ml.registry import code_version, model_load
from ml.selectors import champion_get, labels_as_of, logs_cut
from ml.services.gates import model_gate
from ml.train import (
    DEFAULT_THRESHOLDS,
    TrainParams,
    TrainResult,
    dataset_profile,
    learned_from,
    model_features,
    train_model,
    training_reference,
)


class ModelRejected(Exception):
    """A model the offline gates rejected: it never serves in any role."""

    def __init__(self, model: ModelVersion):
        failed = [g for g in model.gates if not g["passed"]]
        said = "; ".join(f"{g['gate']}: {g['reason']}" for g in failed)
        super().__init__(f"model {model.version} was rejected by the offline gates ({said})")
        self.model = model


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


def _thresholds(model: ModelVersion, active: dict[str, Deployment]) -> tuple[float, float]:
    """Return the thresholds ``model`` is deployed with by default (``model_promote``);
    ``active``: the deployments in force by model version."""
    if model.version in active:
        mine = active[model.version]
        return mine.review_threshold, mine.decline_threshold
    for deployment in active.values():
        if deployment.role == Deployment.Role.CHAMPION:
            return deployment.review_threshold, deployment.decline_threshold
    return DEFAULT_THRESHOLDS["review"], DEFAULT_THRESHOLDS["decline"]


# The reason kept for a champion's predecessor left as a shadow (``ml.selectors``
# ``previous_champion`` finds it by this).
PREVIOUS_CHAMPION = "the previous champion, kept as a shadow for a rollback"


def model_promote(
    *,
    version: str,
    role: str = Deployment.Role.CHAMPION,
    review_threshold: float | None = None,
    decline_threshold: float | None = None,
    canary_share: float = 0.0,
    reason: str = "by hand",
    figures: dict | None = None,
    keep_previous: bool = True,
) -> Deployment:
    """Deploy model ``version`` as ``role`` (champion, shadow, canary or retired) with its
    decision thresholds, through ``fraud.services.deployment_set``; return the deployment.
    Thresholds not given are the ones the model decides with now (a canary made champion, a
    previous champion rolled back to), else the champion's, else ``DEFAULT_THRESHOLDS`` (the
    thresholds its gates matched to the champion's alert volume are a person's to choose).
    A change of role is recorded (``RoleChange``: ``reason`` and ``figures``), and so is the
    champion's it replaces: with ``keep_previous`` and ``ML_KEEP_PREVIOUS_CHAMPION`` that one
    stays as a shadow (``PREVIOUS_CHAMPION``; the one kept before is retired), scoring the same
    payments, so the champion can be rolled back to it on evidence (``champion_check``);
    otherwise it is retired.

    Verify the artifact first (``model_load``): a file that no longer matches its sha256 is
    never deployed (``ModelRefused``, nothing written). Idempotent on the version. A running
    scorer picks the deployment up without restarting; nothing is published.
    """
    model = ModelVersion.objects.get(version=version)
    if model.status == "rejected":
        raise ModelRejected(model)
    model_load(version)
    # Each checkpoint has its own champion: the one replaced, the thresholds inherited and the
    # previous champion kept are those of the model's checkpoint.
    checkpoint = FEATURE_SERVICES[model.feature_service].checkpoint
    with transaction.atomic():
        before = {
            d.model_version: d
            for d in deployments_lock()
            if d.role != Deployment.Role.RETIRED and d.checkpoint == checkpoint
        }
        was = before[model.version].role if model.version in before else ""
        if review_threshold is None or decline_threshold is None:
            review, decline = _thresholds(model, before)
            review_threshold = review if review_threshold is None else review_threshold
            decline_threshold = decline if decline_threshold is None else decline_threshold
        deployment = deployment_set(
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
        if was != role:
            _role_changed(model.version, was, role, reason, figures, canary_share)
        if role == Deployment.Role.CHAMPION:
            replaced = [
                d
                for d in before.values()
                if d.role == Deployment.Role.CHAMPION and d.model_version != model.version
            ]
            for previous in replaced:
                if keep_previous and settings.ML_KEEP_PREVIOUS_CHAMPION:
                    _keep_as_shadow(previous, before, successor=model.version)
                else:
                    _role_changed(
                        previous.model_version,
                        Deployment.Role.CHAMPION,
                        Deployment.Role.RETIRED,
                        f"replaced by {model.version}",
                    )
    return deployment


def _role_changed(
    version: str,
    was: str,
    role: str,
    reason: str,
    figures: dict | None = None,
    share: float = 0.0,
) -> RoleChange:
    """Record that ``version``'s role went from ``was`` to ``role`` and why."""
    return RoleChange.objects.create(
        model_version=version,
        previous_role=was,
        role=role,
        canary_share=share,
        reason=reason,
        figures=figures or {},
        after_score_id=score_id_latest(),
    )


def _keep_as_shadow(previous: Deployment, active: dict[str, Deployment], *, successor: str):
    """Leave the replaced champion ``previous`` as a shadow; retire the one kept before."""
    for version in previous_champions(active):
        if version != previous.model_version:
            deployment_retire(deployment=active[version], reason="replaced as previous champion")
    _redeploy(previous, Deployment.Role.SHADOW)
    _role_changed(
        previous.model_version,
        Deployment.Role.CHAMPION,
        Deployment.Role.SHADOW,
        f"{PREVIOUS_CHAMPION} (replaced by {successor})",
    )


def _redeploy(deployment: Deployment, role: str) -> None:
    """Give ``deployment`` another role, everything else as it is."""
    deployment_set(
        model_version=deployment.model_version,
        artifact_path=deployment.artifact_path,
        sha256=deployment.sha256,
        feature_service=deployment.feature_service,
        feature_names=list(deployment.feature_names),
        role=role,
        review_threshold=deployment.review_threshold,
        decline_threshold=deployment.decline_threshold,
    )


def previous_champions(active: dict[str, Deployment]) -> list[str]:
    """Return the shadows of ``active`` (deployments by version) kept as a previous champion:
    their last role change says so."""
    shadows = [v for v, d in active.items() if d.role == Deployment.Role.SHADOW]
    found = []
    for version in shadows:
        last = RoleChange.objects.filter(model_version=version).order_by("-id").first()
        if last is not None and last.reason.startswith(PREVIOUS_CHAMPION):
            found.append(version)
    return found


def deployment_retire(
    *, deployment: Deployment, reason: str, figures: dict | None = None
) -> RoleChange:
    """Retire ``deployment`` (its cards go back to the champion at the scorer's next poll) and
    record why; return the record (``RoleChange``). Nothing is verified: a model is taken out,
    not put in."""
    with transaction.atomic():
        _redeploy(deployment, Deployment.Role.RETIRED)
        return _role_changed(
            deployment.model_version, deployment.role, Deployment.Role.RETIRED, reason, figures
        )


def model_bootstrap(
    *,
    history: Path,
    work_dir: Path,
    maturity: timedelta = timedelta(days=3),
    snapshot_every: timedelta = timedelta(hours=1),
    params: TrainParams | None = None,
    thresholds: Mapping[str, float] = DEFAULT_THRESHOLDS,
    promote: bool = True,
    service: str | None = None,
) -> ModelVersion:
    """Train the first model of ``service`` (and so of its checkpoint) on the simulator history
    at ``history`` and register it; deploy it as that checkpoint's champion when ``promote``.
    Return the model version. ``service``: the authorization's (``FRAUD_SERVICE``) by default.

    The features come from a scratch feature store under ``work_dir`` (its own Feast project,
    registry and offline files), so the history, another world than the live one, never mixes
    with the live store. Idempotent: the same history and parameters train the same bytes,
    hence the same version. Side effects: the model file, its registry row, the champion
    deployment; nothing is published.
    """
    service = service or authorization_service()
    config = FeatureConfig(
        project=f"bootstrap{uuid.uuid4().hex[:8]}",
        registry_url=f"sqlite:///{work_dir / 'feast-registry.sqlite3'}",
        online="sqlite",
        data_dir=work_dir / "features",
    )
    apply_repo(config)
    try:
        frame = bootstrap_dataset(
            config, history, maturity=maturity, snapshot_every=snapshot_every, service=service
        )
    finally:
        feature_store(config).teardown()
    result = train_model(
        frame,
        features=model_features(service),
        time_column="event_timestamp",
        params=params,
        thresholds=thresholds,
    )
    model = candidate_register(
        result=result,
        frame=frame,
        time_column="event_timestamp",
        source=ModelVersion.Source.BOOTSTRAP,
        service=service,
    )
    if model.status == "rejected":
        raise ModelRejected(model)
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
    service = authorization_service()
    frame = logged_dataset(config, labels=labels_as_of(), maturity=maturity, service=service)
    champion = champion_get()
    parent = parent or champion
    features = model_features(service)
    init_model = None
    if parent is not None and list(parent.feature_names) == features:
        init_model = model_load(parent.version)
    result = train_model(
        frame,
        features=features,
        time_column="request_time",
        params=params or TrainParams(num_boost_round=50),
        init_model=init_model,
        unseen=champion_unseen(frame, champion, maturity=maturity),
        thresholds=thresholds,
    )
    return candidate_register(
        result=result,
        frame=frame,
        time_column="request_time",
        source=ModelVersion.Source.LOGS,
        parent=parent if init_model is not None else None,
        service=service,
    )


def champion_unseen(
    frame: pd.DataFrame, champion: ModelVersion | None, *, maturity: timedelta
) -> np.ndarray | None:
    """Return, per row of the log-and-wait training set ``frame``, whether ``champion`` never
    learned from it (``ml.train.learned_from`` at its cut, ``ml.selectors.logs_cut``); ``None``
    when it learned from none of the logs."""
    cut = logs_cut(champion)
    if cut is None:
        return None
    return ~learned_from(frame, cut=cut, maturity=maturity, time_column="request_time")


def candidate_register(
    *,
    result: TrainResult,
    frame: pd.DataFrame,
    time_column: str,
    source: str,
    parent: ModelVersion | None = None,
    kind: str = TrainingRun.Kind.FULL,
    profile: dict[str, Any] | None = None,
    constant: list[str] | None = None,
    service: str | None = None,
) -> ModelVersion:
    """Register a model of ``service`` (default: ``FRAUD_SERVICE``, the authorization's) just
    trained on ``frame`` (``model_register``), with the training set's profile (``profile``,
    else computed: ``ml.train.dataset_profile``) and its drift reference in its metrics, and
    run the offline gates on it (``model_gate``: the backtest of its twin on the rows of its
    holdout, the newest, which the twin did not train on); return it, approved or rejected.
    Nothing is deployed."""
    service = service or authorization_service()
    profile = profile or dataset_profile(frame, result.features, time_column=time_column)
    result.metrics["label_sources"] = profile["label_sources"]
    result.metrics["dataset"] = profile
    result.metrics["reference"] = training_reference(result.booster, frame, result.features)
    model = model_register(
        booster=result.booster,
        feature_service=service,
        params=result.params,
        metrics=result.metrics,
        data_start=result.data_start,
        data_end=result.data_end,
        training_rows=result.training_rows,
        source=source,
        parent=parent,
        kind=kind,
    )
    return model_gate(
        model=model,
        booster=result.booster,
        window=result.window,
        constant=profile["constant"] if constant is None else constant,
        time_column=time_column,
        twin=result.twin,
        service=service,
    )
