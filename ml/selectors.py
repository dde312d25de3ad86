"""Reads of the ml room: model versions and what is deployed (through ``fraud.selectors``)."""

from __future__ import annotations

from fraud.selectors import deployment_champion, deployment_champion_exists
from ml.models import ModelVersion


def champion_get() -> ModelVersion | None:
    """Return the model version deployed as champion, ``None`` when there is none (or it was
    not registered here)."""
    deployment = deployment_champion()
    if deployment is None:
        return None
    return ModelVersion.objects.filter(version=deployment.model_version).first()


def champion_exists() -> bool:
    """Return whether any model is deployed as champion."""
    return deployment_champion_exists()
