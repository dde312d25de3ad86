"""The model registry's reads: a registered model's booster, verified, and the code that trains.

A model is stored only as LightGBM's text format (never pickle), one file
``ML_MODELS_DIR/<version>.txt`` (written by ``ml.services.model_register``), and loaded only
after its bytes match the sha256 recorded when it was registered.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import lightgbm as lgb

from fraud.artifacts import booster_load
from ml.models import ModelVersion

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
