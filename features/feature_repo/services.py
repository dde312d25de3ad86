"""Feast feature services, one per ``features.definitions.FEATURE_SERVICES``: ``fraud_scoring_v1``.

On-demand features are not Feast objects: ``features.ondemand`` computes them from the request
and the served values, online and in training sets alike.

Each service logs its served vectors (``fraud.feature_log``) to Parquet files under
``<data_dir>/offline/logs/<service>/``, through Feast's feature logging.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path

from feast import FeatureService, FeatureView
from feast.feature_logging import LoggingConfig
from feast.infra.offline_stores.file_source import FileLoggingDestination

from features import definitions
from features.feature_repo import cli_objects
from features.feature_repo.views import feature_views
from features.store import FeatureConfig


def feature_service(
    service: definitions.FeatureService, *, views: Mapping[str, FeatureView], logs_dir: Path
) -> FeatureService:
    """Return the Feast service of ``service``: every feature of each of its views, logged to
    ``logs_dir/<service>``."""
    return FeatureService(
        name=service.name,
        features=[views[view.name] for view in service.views],
        description=f"Served together; on-demand features: {', '.join(service.on_demand)}.",
        logging_config=LoggingConfig(
            destination=FileLoggingDestination(path=str(logs_dir / service.name))
        ),
    )


@cache
def feature_services(config: FeatureConfig) -> dict[str, FeatureService]:
    """Return service name -> Feast service, for every declared service (the same objects per
    config)."""
    views = feature_views(config)
    return {
        name: feature_service(service, views=views, logs_dir=config.logs_dir)
        for name, service in definitions.FEATURE_SERVICES.items()
    }


# The feast CLI discovers objects as module attributes (see the package docstring).
globals().update(cli_objects(__name__))
