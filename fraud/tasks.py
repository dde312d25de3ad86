"""Celery tasks of the fraud room; each builds what it needs and calls one service."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from features.store import FeatureConfig
from fraud.deployments import model_set_build
from fraud.feature_reads import FeatureReader
from fraud.models import CHECKPOINTS
from fraud.scorer.settings import checkpoint_service
from fraud.selectors import deployments_active
from fraud.services import scores_rescore


@shared_task(name="fraud.rescore_degraded", ignore_result=True)
def rescore_degraded(limit: int = 20_000) -> int:
    """Rescore up to ``limit`` degraded scores of each checkpoint with the features served now
    (``fraud.services.scores_rescore``: each with its checkpoint's feature service and models);
    return how many. Safe to repeat: a rescored score is not selected again, and with the store
    still down nothing changes."""
    config = FeatureConfig.from_settings()
    done = 0
    for checkpoint in CHECKPOINTS:
        reader = FeatureReader(
            config,
            service=checkpoint_service(checkpoint),
            timeout_s=settings.FRAUD_FEATURE_TIMEOUT_MS / 1000,
        )
        try:
            reader.warm()
            done += scores_rescore(
                models=model_set_build(deployments_active(checkpoint=checkpoint)),
                reader=reader,
                limit=limit,
                threads=settings.FRAUD_MODEL_THREADS,
                checkpoint=checkpoint,
            )
        finally:
            reader.close()
    return done


@shared_task(name="fraud.reviews_escalate", ignore_result=True)
def reviews_escalate() -> tuple[int, int]:
    """Escalate reviews open past the SLA and close those past the expiry by its policy
    (``fraud.services.reviews.reviews_escalate``); return (escalated, expired). Safe to
    repeat."""
    from fraud.services.reviews import reviews_escalate as escalate

    return escalate()
