"""Writes of model deployments: which model version plays which part in the scorer."""

from __future__ import annotations

import re

from django.db import transaction

from features.definitions import FEATURE_SERVICES
from fraud.artifacts import ModelRefused, feature_names_check
from fraud.models import Deployment

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class DeploymentInvalid(ValueError):
    """A deployment was refused; the message names the field and the reason."""


def deployments_lock() -> list[Deployment]:
    """Lock every deployment until the caller's transaction ends and return them.

    Two champions set at once (a promotion racing a rollback) must not both retire the same
    predecessor and both insert: the second waits here, and its next statement sees the
    first's champion. Call inside ``transaction.atomic``."""
    return list(Deployment.objects.select_for_update().order_by("pk"))


def deployment_set(
    *,
    model_version: str,
    artifact_path: str,
    sha256: str,
    feature_service: str,
    feature_names: list[str],
    role: str,
    review_threshold: float,
    decline_threshold: float,
    canary_share: float = 0.0,
) -> Deployment:
    """Create or update the deployment of ``model_version`` (the idempotency key) and return it.

    The deployment scores its feature service's checkpoint (``FeatureService.checkpoint``).
    Setting ``role="champion"`` retires the previous champion of that checkpoint in the same
    transaction, so each checkpoint has at most one champion, also when two are set at once
    (the later wins). Validate every field first and raise ``DeploymentInvalid`` naming the
    problem, writing nothing. The artifact file itself is verified by the scorer when it loads
    the model (``fraud.artifacts.booster_load``). A running scorer picks the change up within
    ``FRAUD_DEPLOYMENT_POLL_SECONDS``; nothing is published.
    """
    if not model_version or len(model_version) > 64:
        raise DeploymentInvalid("model_version must be 1-64 characters")
    if not artifact_path or len(artifact_path) > 500:
        raise DeploymentInvalid("artifact_path must be 1-500 characters")
    if not _SHA256.match(sha256 or ""):
        raise DeploymentInvalid("sha256 must be 64 lowercase hex digits")
    if role not in Deployment.Role.values:
        raise DeploymentInvalid(
            f"role must be one of {', '.join(Deployment.Role.values)}, not {role!r}"
        )
    if not 0.0 <= review_threshold <= decline_threshold <= 1.0:
        raise DeploymentInvalid(
            "thresholds must satisfy 0 <= review_threshold <= decline_threshold <= 1, got "
            f"review {review_threshold}, decline {decline_threshold}"
        )
    if not 0.0 <= canary_share <= 1.0:
        raise DeploymentInvalid(f"canary_share must be within 0-1, got {canary_share}")
    try:
        feature_names_check(list(feature_names), feature_service)
    except ModelRefused as exc:
        raise DeploymentInvalid(str(exc)) from exc
    checkpoint = FEATURE_SERVICES[feature_service].checkpoint
    with transaction.atomic():
        if role == Deployment.Role.CHAMPION:
            deployments_lock()
            for previous in (
                Deployment.objects.select_for_update()
                .filter(role=Deployment.Role.CHAMPION, checkpoint=checkpoint)
                .exclude(model_version=model_version)
            ):
                previous.role = Deployment.Role.RETIRED
                previous.save(update_fields=["role", "updated_at"])
        deployment, _ = Deployment.objects.update_or_create(
            model_version=model_version,
            defaults={
                "artifact_path": artifact_path,
                "sha256": sha256,
                "feature_service": feature_service,
                "checkpoint": checkpoint,
                "feature_names": list(feature_names),
                "role": role,
                "canary_share": canary_share,
                "review_threshold": review_threshold,
                "decline_threshold": decline_threshold,
            },
        )
    return deployment
