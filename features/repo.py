"""Apply the feature repo: the offline directories and the Feast registry, from the declarations.

``apply_repo`` is what ``manage.py features_apply`` runs, and what every process that reads or
writes features may run first: it is idempotent.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import pyarrow.parquet as pq

from features.definitions import VIEWS, View
from features.feature_repo.entities import ENTITIES
from features.feature_repo.services import feature_services
from features.feature_repo.sources import view_sources
from features.feature_repo.views import feature_views
from features.store import FeatureConfig, feature_store
from features.tables import view_schema

# Every view directory holds this empty file, so a glob over it never matches zero files (DuckDB
# and Feast fail on an empty glob) and the schema is known before any row is written.
EMPTY_FILE = "empty.parquet"


def offline_dirs_create(config: FeatureConfig) -> None:
    """Create each view's offline directory with an empty Parquet file of its schema.

    Idempotent: an existing empty file is left as it is. Safe beside other processes doing the
    same (the stream processor and the scorer apply the repo as they start): each writes under
    a hidden temporary name of its own, and the last rename leaves the same file.
    """
    for view in VIEWS:
        directory = config.view_dir(view.name)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / EMPTY_FILE
        if not path.exists():
            tmp = directory / f".{EMPTY_FILE}.{uuid.uuid4().hex}.tmp"
            pq.write_table(view_schema(view).empty_table(), tmp)
            tmp.replace(path)


def apply_repo(config: FeatureConfig) -> None:
    """Create the offline directories and apply the repo's Feast objects to the registry.

    Apply the entities, one source and one view per declared view, and the feature services of
    ``features.feature_repo``; delete the project's views and services no longer declared.
    Idempotent: applying an unchanged repo changes nothing that is served.
    """
    offline_dirs_create(config)
    store = feature_store(config)
    views = feature_views(config)
    services = feature_services(config)
    stale = [
        *(fs for fs in store.list_feature_services() if fs.name not in services),
        *(fv for fv in store.list_feature_views() if fv.name not in views),
    ]
    store.apply(
        [
            *ENTITIES.values(),
            *view_sources(config).values(),
            *views.values(),
            *services.values(),
        ],
        objects_to_delete=stale,
        partial=not stale,
    )


def repo_ensure_applied(config: FeatureConfig, views: Sequence[View]) -> bool:
    """Apply the repo unless every one of ``views`` is registered already (a fresh deployment:
    the views must be in the registry before rows are written or read); return whether it
    applied."""
    declared = {fv.name for fv in feature_store(config).list_feature_views()}
    if {view.name for view in views} <= declared:
        return False
    apply_repo(config)
    return True
