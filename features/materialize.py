"""Batch materialisation and staleness.

``materialize_batch_views`` evaluates the batch views at an instant over the archived event
history (DuckDB engine), appends the snapshot to each view's offline Parquet and writes it to the
online store; ``feature_view_staleness`` says how old each view's newest data is.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
from feast import FeatureStore

from features.definitions import BATCH_VIEWS, STREAM_VIEWS
from features.offline import feature_table, history_load, view_file_write
from features.publication import publication_begin, publication_end
from features.store import FeatureConfig, duckdb_connect, feature_store
from features.windows import moment, to_us

# Per batch view, the last instant materialised (µs since the epoch), under ``data_dir``.
STATE_FILE = "materialized.json"


def _state_path(config: FeatureConfig) -> Path:
    return config.data_dir / STATE_FILE


def last_materialized(config: FeatureConfig) -> dict[str, int]:
    """Return batch view name -> the last instant materialised (µs), for views ever materialised."""
    path = _state_path(config)
    return json.loads(path.read_text()) if path.exists() else {}


def _newest_event_us(config: FeatureConfig, view: str) -> int | None:
    directory = config.view_dir(view)
    if not any(directory.glob("*.parquet")):
        return None
    glob = str(directory / "*.parquet").replace("'", "''")
    with duckdb_connect(config) as con:
        (newest,) = con.execute(
            f"SELECT epoch_us(max(event_timestamp)) FROM read_parquet('{glob}')"  # noqa: S608
        ).fetchone()
    return newest


def feature_view_staleness(
    config: FeatureConfig, now: datetime | None = None
) -> dict[str, float | None]:
    """Return view name -> seconds between ``now`` (default: the wall clock) and the view's
    newest data: for a batch view its last materialisation, for a stream view the newest
    ``event_timestamp`` of its offline rows; ``None`` when a view has neither. Read only."""
    now_us = to_us(now) if now is not None else int(time.time() * 1_000_000)
    done = last_materialized(config)
    staleness: dict[str, float | None] = {}
    for view in STREAM_VIEWS:
        newest = _newest_event_us(config, view.name)
        staleness[view.name] = None if newest is None else (now_us - newest) / 1e6
    for view in BATCH_VIEWS:
        at = done.get(view.name)
        staleness[view.name] = None if at is None else (now_us - at) / 1e6
    return staleness


@dataclass(frozen=True)
class Materialized:
    at: datetime
    rows: dict[str, int]
    files: list[Path]
    seconds: float


def materialize_batch_views(config: FeatureConfig, now: datetime | None = None) -> Materialized:
    """Evaluate every batch view at ``now`` (default: the wall clock) over the archived event
    history (``<data_dir>/offline/events``) with the DuckDB engine, and publish the snapshot.

    Side effects, per batch view with at least one entity: a new Parquet file of the snapshot in
    the view's offline directory (stamped ``now``), one ``write_to_online_store`` call, and
    ``now`` recorded as the view's last materialisation (``last_materialized``); around the
    writes, the publication mark (``features.publication``) says a snapshot of ``now`` is being
    published, so the scorer marks a payment at or after ``now`` stale until every view's
    online write completed, instead of serving it half the old snapshot. Running twice
    for the same ``now`` serves the same values (the second file repeats the first, with a later
    ``created_timestamp``, which point-in-time joins prefer).
    """
    began = time.perf_counter()
    # The mark is made before the instant is taken from the clock (features.publication says
    # why): a payment read without seeing it happened before the snapshot's instant.
    at_us = publication_begin(config, at_us=None if now is None else to_us(now))
    at = moment(at_us)
    loaded = history_load(config.offline_dir / "events", views=BATCH_VIEWS, config=config)
    store = feature_store(config)
    created_us = int(time.time() * 1_000_000)
    rows: dict[str, int] = {}
    files: list[Path] = []
    for view in BATCH_VIEWS:
        table = feature_table(view, loaded.snapshot(view, at_us=at_us), created_us=created_us)
        rows[view.name] = table.num_rows
        if table.num_rows:
            files.append(view_file_write(config, view, table, label="materialized"))
            _online_write(store, view.name, table.to_pandas())
    publication_end(config, at_us)
    _record(config, {view.name: at_us for view in BATCH_VIEWS})
    return Materialized(at=at, rows=rows, files=files, seconds=time.perf_counter() - began)


def _online_write(store: FeatureStore, view_name: str, frame: pd.DataFrame) -> None:
    fv = store.get_feature_view(view_name)
    if frame[[f.name for f in fv.features]].isnull().all().all():
        # write_to_online_store silently skips a frame whose features are all null (a zone with
        # no trip in 30 days has no median), which would leave the older values served.
        store._get_provider().ingest_df(fv, frame)
    else:
        store.write_to_online_store(view_name, frame)


def _record(config: FeatureConfig, instants: dict[str, int]) -> None:
    path = _state_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {**last_materialized(config), **instants}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
