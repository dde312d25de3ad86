"""The DuckDB engine: the declared features computed over an event history, for backfills, batch
snapshots, training sets and consistency checks.

The same declarations (``features.definitions``) drive the stream processor; this engine turns
them into SQL, one small template per aggregation kind, and tests hold its values equal to
``features.windows.evaluate``. Events become rows through ``features.windows.extract`` (the one
extraction: payload paths and filters are never re-implemented in SQL), rows go to DuckDB as
Arrow tables, one table per view:

- ``k0, k1, ...``: the entity key (strings, in the order of the view's join keys);
- ``event_id``, ``ts`` (event time, µs since the epoch), ``kind``;
- ``f_<field>``: each source field of the view (its type inferred from the values).

Three evaluations (semantics in ``features.definitions``):

- stream: every row's values at its own event time (window functions partitioned by the key,
  ordered by ``ts``, ``RANGE BETWEEN <window - 1 µs> PRECEDING AND CURRENT ROW``, so
  ``t - window < ts <= t`` with ties at ``t`` included);
- snapshot: every entity with a row at or before ``T``, its values at ``T`` (``GROUP BY`` the key,
  the window as a filter);
- instants (``features.offline.instants``): each request's entity at the request's own instant,
  ``features.windows.value_at`` (the stream evaluation's windows read at a row the request
  adds to its entity's rows; null past the view's ttl): training sets' stream views.

Training sets' batch views read the snapshots the engine published instead (the views' offline
Parquet files), each request's latest at or before its instant within the ttl
(``instant_snapshots``: an ``ASOF LEFT JOIN``, the point-in-time join Feast's
``get_historical_features`` made, in bounded memory).

Floats are computed as ``windows`` computes them (``occurred_at`` is ``ts / 1e6``; averages of
integers are the exact sum divided once; the median sorts and takes the middle one or the mean of
the middle two), so both engines agree exactly.
"""

from features.offline.backfill import (
    BackfillResult,
    backfill,
    feature_table,
    recompute_as_of,
    snapshot_instants,
    snapshots_catch_up,
    snapshots_written,
    view_file_write,
    view_keys,
)
from features.offline.history import (
    History,
    history_files,
    history_load,
    rows_load,
)
from features.offline.instants import (
    entity_requests,
    instant_requests,
    instant_snapshots,
    instant_values,
)
from features.offline.sql import (
    HISTORY_COLUMNS,
    MEDIAN_SQL,
    RATIO_SQL,
    TEMPLATES,
    asof_sql,
    field_column,
    instant_sql,
    key_columns,
    snapshot_sql,
    stream_sql,
    table_name,
    window_us,
)

__all__ = [
    "HISTORY_COLUMNS",
    "MEDIAN_SQL",
    "RATIO_SQL",
    "TEMPLATES",
    "BackfillResult",
    "History",
    "asof_sql",
    "backfill",
    "entity_requests",
    "feature_table",
    "field_column",
    "history_files",
    "history_load",
    "instant_requests",
    "instant_snapshots",
    "instant_sql",
    "instant_values",
    "key_columns",
    "recompute_as_of",
    "rows_load",
    "snapshot_instants",
    "snapshot_sql",
    "snapshots_catch_up",
    "snapshots_written",
    "stream_sql",
    "table_name",
    "view_file_write",
    "view_keys",
    "window_us",
]
