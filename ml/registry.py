"""The model registry: LightGBM text models on disk, their metadata and lineage in the database,
and promotion into the scorer's deployments.

A model is stored only as LightGBM's text format (never pickle), one file
``ML_MODELS_DIR/<version>.txt``, and loaded only after its bytes match the sha256 recorded when
it was registered.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import lightgbm as lgb
from django.conf import settings
from django.db import IntegrityError, transaction

from fraud.artifacts import booster_load, feature_names_check
from fraud.models import Deployment
from fraud.services import deployment_set
from ml.models import ModelVersion
from ml.train import DEFAULT_THRESHOLDS

_ROOT = Path(__file__).resolve().parent.parent


def code_version() -> str:
    """Return the code that trains: the git commit checked out (read from ``.git``, no git
    process), else the installed package's version."""
    git = _ROOT / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if head.startswith("ref: "):
            ref = head[5:]
            path = git / ref
            if path.exists():
                return path.read_text().strip()
            for line in (git / "packed-refs").read_text().splitlines():
                if line.endswith(" " + ref):
                    return line.split(" ", 1)[0]
            raise OSError(f"unresolved ref {ref}")
        return head
    except OSError:
        try:
            return f"rideshare-fraud {metadata.version('rideshare-fraud')}"
        except metadata.PackageNotFoundError:
            return "unknown"


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
            )
    except IntegrityError:
        # Registered concurrently by another process: same bytes, same model.
        return ModelVersion.objects.get(sha256=sha256)


def model_load(version: str) -> lgb.Booster:
    """Return the booster of model ``version``, its file's sha256 verified before LightGBM
    parses it; raise ``fraud.artifacts.ModelRefused`` on any mismatch, ``DoesNotExist`` for an
    unknown version. Read only."""
    model = ModelVersion.objects.get(version=version)
    return booster_load(
        artifact_path=model.artifact_path,
        sha256=model.sha256,
        feature_names=model.feature_names,
        feature_service=model.feature_service,
    )


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
