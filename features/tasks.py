"""Celery tasks of the feature platform; each builds the configuration and calls one service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from celery import shared_task
from django.conf import settings

from features.consistency import served_consistency_run
from features.materialize import materialize_batch_views as materialize_batch_views_service
from features.store import FeatureConfig


@shared_task(name="features.materialize_batch_views", ignore_result=True)
def materialize_batch_views() -> dict[str, int]:
    """Materialise every batch view as of now (``features.materialize``); return the rows
    written per view. Safe to repeat: a rerun publishes the same snapshot again."""
    result = materialize_batch_views_service(FeatureConfig.from_settings())
    return result.rows


@shared_task(name="features.served_consistency", ignore_result=True)
def served_consistency() -> int:
    """Compare a sample of the vectors logged in the last schedule period (and a little more,
    so runs overlap) with their training-set rows; save the report for ``/metrics/features``;
    return how many compared vectors differ. Read only but for the report: safe to repeat."""
    every = settings.FEATURES_SERVED_CONSISTENCY_EVERY_SECONDS
    report = served_consistency_run(
        FeatureConfig.from_settings(),
        since=datetime.now(UTC) - timedelta(seconds=every * 1.5),
        limit=settings.FEATURES_SERVED_CONSISTENCY_SAMPLE,
    )
    return report.mismatched_vectors
