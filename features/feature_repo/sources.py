"""Feast batch sources: one ``FileSource`` per view, ``<view>_source``, over the view's Parquet
files (``<data_dir>/offline/views/<view>/*.parquet``), written by the stream processor, the
DuckDB backfill and batch materialisation alike (``features.tables.view_table``)."""

from __future__ import annotations

from functools import cache

from feast import FileSource
from feast.data_format import ParquetFormat

from features.definitions import VIEWS, View
from features.feature_repo import cli_objects
from features.store import FeatureConfig
from features.tables import CREATED_TIMESTAMP, EVENT_TIMESTAMP


def source_name(view: View) -> str:
    return f"{view.name}_source"


def view_source(view: View, *, config: FeatureConfig) -> FileSource:
    """Return the Feast source of ``view``: every Parquet file of its offline directory."""
    return FileSource(
        name=source_name(view),
        path=str(config.view_dir(view.name) / "*.parquet"),
        file_format=ParquetFormat(),
        timestamp_field=EVENT_TIMESTAMP,
        created_timestamp_column=CREATED_TIMESTAMP,
        description=f"Feature rows of {view.name}.",
    )


@cache
def view_sources(config: FeatureConfig) -> dict[str, FileSource]:
    """Return view name -> Feast source, for every declared view (the same objects per config)."""
    return {view.name: view_source(view, config=config) for view in VIEWS}


# The feast CLI discovers objects as module attributes (see the package docstring).
globals().update(cli_objects(__name__))
