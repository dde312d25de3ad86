"""Celery tasks of the feature platform; each builds the configuration and calls one service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from celery import shared_task
from django.conf import settings

from features.consistency import served_consistency_run
from features.materialize import materialize_batch_views as materialize_batch_views_service
from features.offline import snapshots_catch_up
from features.store import FeatureConfig


@shared_task(name="features.materialize_batch_views", ignore_result=True)
def materialize_batch_views() -> dict[str, int]:
    """Write the snapshots missing at past instants of the schedule (a history replayed through
    the stream, a period the beat did not run: ``features.offline.snapshots_catch_up``), then
    materialise every batch view as of now (``features.materialize``); return the rows of the
    latter per view. Safe to repeat: the catch-up writes nothing twice, and a rerun publishes
    the same snapshot again."""
    config = FeatureConfig.from_settings()
    snapshots_catch_up(config, every=timedelta(seconds=settings.FEATURES_MATERIALIZE_EVERY_SECONDS))
    return materialize_batch_views_service(config).rows


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
        # The authorization scorer's vectors: the ones the learning loop trains on.
        service=settings.FRAUD_SERVICE,
    )
    return report.mismatched_vectors
