"""The feature services' served logs, read back: every vector a server logged through Feast's
feature logging, one row per request (``logged_features``), and the layout those rows follow
(``log_layout``), shared with the writer (``fraud.feature_log``).

A row follows Feast's logging schema for the service
(``FeatureServiceLoggingSource.get_schema``): the join keys as served, then per feature
``<view>__<feature>``, ``<view>__<feature>__timestamp`` and ``<view>__<feature>__status`` (the
``FieldStatus`` number), then ``__log_timestamp``, ``__log_date`` and ``__request_id``. Two
departures, both accepted by Feast's DuckDB destination, which writes the table as given:

- the feature timestamps are microseconds, not Feast's seconds: that is the precision served;
- extra columns carry what Feast's schema lacks: ``on_demand__<feature>`` (the on-demand values
  as served), ``payment_id``, ``__request_time`` (when it was scored), ``__occurred_at`` (the
  payment's own time: the instant the features are of), ``__model_version``, ``__role``, and
  ``__consistency`` / ``__consistency_lag_ms``: whether the server vouched for the vector being
  the training join's (``exact``), or not (``stale``, with how far behind), null for a server
  that did not check (``features.stream_serving``).

A request logged more than once (at-least-once input) reads as its latest row; a file torn by a
crash mid-write (no Parquet footer) is skipped on read.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from feast.feature_logging import (
    LOG_TIMESTAMP_FIELD,
    REQUEST_ID_FIELD,
    FeatureServiceLoggingSource,
)
from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

from features.definitions import FEATURE_SERVICES, FRAUD_SCORING_V1, FeatureService
from features.feature_repo.services import feature_services
from features.ondemand import DTYPES
from features.store import FeatureConfig, feature_store
from features.training import service_join_keys

log = logging.getLogger(__name__)

SERVICE = FRAUD_SCORING_V1.name
ON_DEMAND_PREFIX = "on_demand__"
PAYMENT_ID = "payment_id"
REQUEST_TIME_FIELD = "__request_time"
MODEL_VERSION_FIELD = "__model_version"
ROLE_FIELD = "__role"
OCCURRED_AT_FIELD = "__occurred_at"
CONSISTENCY_FIELD = "__consistency"
CONSISTENCY_LAG_FIELD = "__consistency_lag_ms"

MICROS_UTC = pa.timestamp("us", tz="UTC")
ARROW_TYPES = {"int64": pa.int64(), "float64": pa.float64()}
_PANDAS = {pa.int64(): pd.Int64Dtype(), pa.float64(): pd.Float64Dtype()}
STATUS_NUMBERS: dict[str, int] = dict(FieldStatus.items())
_STATUS_NAMES = {number: name for name, number in STATUS_NUMBERS.items()}


@dataclass(frozen=True)
class LogLayout:
    """Where each feature of a service goes in a log row."""

    schema: pa.Schema
    join_keys: tuple[str, ...]
    # feature name -> logged column prefix (``<view>__<feature>``)
    columns: Mapping[str, str]
    on_demand: tuple[str, ...]


@lru_cache(maxsize=8)
def log_layout(config: FeatureConfig, service: str) -> LogLayout:
    """Return where each feature of ``service`` goes in a log row."""
    declared: FeatureService = FEATURE_SERVICES[service]
    feast_schema = FeatureServiceLoggingSource(
        feature_services(config)[service], config.project
    ).get_schema(feature_store(config).registry)
    fields = [
        pa.field(f.name, MICROS_UTC) if f.name.endswith("__timestamp") else f for f in feast_schema
    ]
    fields += [
        pa.field(ON_DEMAND_PREFIX + name, ARROW_TYPES[DTYPES[name]]) for name in declared.on_demand
    ]
    fields += [
        pa.field(PAYMENT_ID, pa.string()),
        pa.field(REQUEST_TIME_FIELD, MICROS_UTC),
        pa.field(MODEL_VERSION_FIELD, pa.string()),
        pa.field(ROLE_FIELD, pa.string()),
        pa.field(OCCURRED_AT_FIELD, MICROS_UTC),
        pa.field(CONSISTENCY_FIELD, pa.string()),
        pa.field(CONSISTENCY_LAG_FIELD, pa.float64()),
    ]
    columns = {f.name: f"{view.name}__{f.name}" for view in declared.views for f in view.features}
    return LogLayout(
        schema=pa.schema(fields),
        join_keys=tuple(service_join_keys(declared)),
        columns=columns,
        on_demand=declared.on_demand,
    )


def log_dir(config: FeatureConfig, service: str = SERVICE) -> Path:
    """Return the service's logging destination (a directory of Parquet files)."""
    destination = feature_services(config)[service].logging_config.destination
    return Path(destination.path)


def _readable(path: Path) -> bool:
    try:
        pq.read_metadata(path)
    except (OSError, pa.ArrowInvalid):
        log.warning("skipping unreadable feature log file %s (torn write?)", path)
        return False
    return True


def _column(table: pa.Table, name: str, type_: pa.DataType) -> pa.ChunkedArray:
    """Return ``table``'s column ``name``, all null when no file read has it (an older log)."""
    if name in table.column_names:
        return table[name].cast(type_)
    return pa.chunked_array([pa.nulls(table.num_rows, type_)])


def logged_features(
    config: FeatureConfig, service: str = SERVICE, *, detail: bool = True
) -> pd.DataFrame:
    """Return the logged vectors of ``service``: one row per event (the latest log of an event
    logged more than once), ordered by request time then event id. Read only.

    Columns: ``event_id``, ``payment_id``, ``request_time``, ``model_version``, ``role``,
    ``logged_at``, ``occurred_at``, ``consistency`` (``exact``, ``stale`` or null: logs
    written before the server checked read as null too), ``consistency_lag_ms``, the join
    keys as served, every
    stored feature then every on-demand feature by name (nullable ``Int64`` / ``Float64``, as
    ``features.training.training_set``), then ``<feature>__status`` (the status name, e.g.
    ``PRESENT``, ``NOT_FOUND``) and ``<feature>__timestamp`` (the served row's event time,
    UTC) of each stored feature. Without ``detail``, not those two (what training reads: the
    values; a third of the columns, and the statuses are the slow part).
    """
    layout = log_layout(config, service)
    files = sorted(p for p in log_dir(config, service).glob("*.parquet") if _readable(p))
    if files:
        wanted = "*"
        if not detail:
            names = [
                f.name for f in layout.schema if not f.name.endswith(("__status", "__timestamp"))
            ]
            wanted = ", ".join(f'"{name}"' for name in names)
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        table = con.sql(
            # Constant column names only; the file list is a bound parameter.
            f"SELECT {wanted} FROM read_parquet($files, union_by_name = true) "  # noqa: S608
            f"QUALIFY row_number() OVER (PARTITION BY {REQUEST_ID_FIELD} "
            f"ORDER BY {LOG_TIMESTAMP_FIELD} DESC) = 1 "
            f"ORDER BY {REQUEST_TIME_FIELD}, {REQUEST_ID_FIELD}",
            params={"files": [str(p) for p in files]},
        ).to_arrow_table()
        con.close()
    else:
        table = layout.schema.empty_table()
    columns: dict[str, pa.ChunkedArray] = {
        "event_id": table[REQUEST_ID_FIELD],
        "payment_id": table[PAYMENT_ID],
        "request_time": table[REQUEST_TIME_FIELD].cast(MICROS_UTC),
        "model_version": table[MODEL_VERSION_FIELD],
        "role": table[ROLE_FIELD],
        "logged_at": table[LOG_TIMESTAMP_FIELD].cast(MICROS_UTC),
        "occurred_at": _column(table, OCCURRED_AT_FIELD, MICROS_UTC),
        "consistency": _column(table, CONSISTENCY_FIELD, pa.string()),
        "consistency_lag_ms": _column(table, CONSISTENCY_LAG_FIELD, pa.float64()),
    }
    for key in layout.join_keys:
        columns[key] = table[key]
    for name, column in layout.columns.items():
        columns[name] = table[column].cast(layout.schema.field(column).type)
    for name in layout.on_demand:
        columns[name] = table[ON_DEMAND_PREFIX + name].cast(ARROW_TYPES[DTYPES[name]])
    frame = pa.table(columns).to_pandas(types_mapper=_PANDAS.get)
    if not detail:
        return frame
    extra = {}
    # A status number is an index into this: one take per column, no Python object per value.
    names = pa.array([_STATUS_NAMES.get(n) for n in range(max(_STATUS_NAMES) + 1)])
    for name, column in layout.columns.items():
        extra[f"{name}__status"] = pc.take(names, table[f"{column}__status"]).to_pandas()
        extra[f"{name}__timestamp"] = table[f"{column}__timestamp"].cast(MICROS_UTC).to_pandas()
    return pd.concat([frame, pd.DataFrame(extra, index=frame.index)], axis=1)
