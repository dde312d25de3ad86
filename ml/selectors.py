"""Reads of the ml room: model versions and what is deployed."""

from __future__ import annotations

from fraud.models import Deployment
from ml.models import ModelVersion


def champion_get() -> ModelVersion | None:
    """Return the model version deployed as champion, ``None`` when there is none (or it was
    not registered here)."""
    deployment = Deployment.objects.filter(role=Deployment.Role.CHAMPION).first()
    if deployment is None:
        return None
    return ModelVersion.objects.filter(version=deployment.model_version).first()


def champion_exists() -> bool:
    """Return whether any model is deployed as champion."""
    return Deployment.objects.filter(role=Deployment.Role.CHAMPION).exists()
