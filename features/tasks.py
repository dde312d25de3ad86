"""Celery tasks of the feature platform; each builds the configuration and calls one service."""

from __future__ import annotations

from celery import shared_task

from features.materialize import materialize_batch_views as materialize_batch_views_service
from features.store import FeatureConfig


@shared_task(name="features.materialize_batch_views", ignore_result=True)
def materialize_batch_views() -> dict[str, int]:
    """Materialise every batch view as of now (``features.materialize``); return the rows
    written per view. Safe to repeat: a rerun publishes the same snapshot again."""
    result = materialize_batch_views_service(FeatureConfig.from_settings())
    return result.rows
