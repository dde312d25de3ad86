"""The DuckDB engine's outputs: backfills of the views' offline files, batch snapshots, and the
values of chosen entities recomputed as of an instant (consistency checks)."""

from __future__ import annotations

import bisect
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from features.definitions import (
    BATCH_VIEWS,
    VIEWS,
    VIEWS_BY_NAME,
    View,
)
from features.offline.history import (
    History,
    history_load,
)
from features.offline.sql import (
    key_columns,
    window_us,
)
from features.store import FeatureConfig, duckdb_connect
from features.tables import CREATED_TIMESTAMP, EVENT_TIMESTAMP, view_schema
from features.windows import to_us


def feature_table(view: View, rows: pa.Table, *, created_us: int) -> pa.Table:
    """Return engine output ``rows`` (``k0..``, ``ts``, features) as feature rows of ``view``
    (``features.tables.view_schema``): join keys, ``event_timestamp`` = ``ts``,
    ``created_timestamp`` = ``created_us``, features."""
    schema = view_schema(view)
    stamp = pa.timestamp("us", tz="UTC")
    columns = {
        **{
            join_key: rows.column(k)
            for join_key, k in zip(view.join_keys, key_columns(view), strict=True)
        },
        EVENT_TIMESTAMP: rows.column("ts").cast(pa.int64()).cast(stamp),
        CREATED_TIMESTAMP: pa.array([created_us] * rows.num_rows, pa.int64()).cast(stamp),
        **{f.name: rows.column(f.name) for f in view.features},
    }
    return pa.table(
        [columns[name].cast(schema.field(name).type) for name in schema.names], schema=schema
    )


def view_file_write(config: FeatureConfig, view: View, table: pa.Table, *, label: str) -> Path:
    """Write ``table`` as a new Parquet file in ``view``'s offline directory; return its path.

    Never rewrite an existing file: the name carries ``label``, the wall time and a random part;
    the file appears whole (written aside, then renamed), so a reader never sees half of it.
    """
    directory = config.view_dir(view.name)
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = directory / f"{label}-{stamp}-{uuid.uuid4().hex[:8]}.parquet"
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(path)
    return path


def snapshot_instants(
    *, first_us: int, last_us: int, every: timedelta, start: datetime | None, end: datetime | None
) -> list[int]:
    """Return the snapshot instants (µs): multiples of ``every`` since the epoch, after
    ``start`` (default: the first event) up to and including ``end`` (default: the first
    multiple at or after the last event)."""
    step = window_us(every)
    low = to_us(start) if start is not None else first_us
    high = to_us(end) if end is not None else -(-last_us // step) * step
    first = (low // step + 1) * step
    return list(range(first, high + 1, step))


@dataclass(frozen=True)
class BackfillResult:
    events: int
    rows: dict[str, int]
    files: list[Path]
    snapshots: list[int]
    seconds: float


def backfill(
    config: FeatureConfig,
    *,
    history: Path,
    views: Sequence[View] = VIEWS,
    start: datetime | None = None,
    end: datetime | None = None,
    snapshot_every: timedelta = timedelta(days=1),
    snapshots: Sequence[datetime] | None = None,
) -> BackfillResult:
    """Compute ``views`` over the event history at ``history`` and append them to the offline
    store: one new Parquet file per view and run, ``created_timestamp`` = this run's wall time.

    A stream view gets a row per event with ``start <= ts < end`` (values see all the history
    before, so windows are complete); a batch view gets a snapshot at each of ``snapshots``
    (default: every ``snapshot_every`` over the span, ``snapshot_instants``). Not idempotent by
    design: a second run appends the same values with a later ``created_timestamp``, which a
    point-in-time join prefers and which serves the same values.
    """
    began = time.perf_counter()
    loaded = history_load(history, views=views, config=config)
    created_us = int(time.time() * 1_000_000)
    rows: dict[str, int] = {}
    files: list[Path] = []
    instants: list[int] = []
    if loaded.first_us is not None:
        instants = (
            sorted(to_us(s) for s in snapshots)
            if snapshots is not None
            else snapshot_instants(
                first_us=loaded.first_us,
                last_us=loaded.last_us,
                every=snapshot_every,
                start=start,
                end=end,
            )
        )
    for view in loaded.views:
        if view.mode == "stream":
            table = loaded.stream_rows(
                view,
                start_us=to_us(start) if start is not None else None,
                end_us=to_us(end) if end is not None else None,
            )
        else:
            table = _snapshots(loaded, view, instants)
        rows[view.name] = _written(config, view, table, created_us, "backfill", files)
    return BackfillResult(
        events=loaded.events,
        rows=rows,
        files=files,
        snapshots=instants,
        seconds=time.perf_counter() - began,
    )


def _snapshots(loaded: History, view: View, instants: Sequence[int]) -> pa.Table | None:
    """Return ``view``'s snapshots at each of ``instants`` (µs) as one table, None for none."""
    parts = [loaded.snapshot(view, at_us=at) for at in instants]
    return pa.concat_tables(parts) if parts else None


def _written(
    config: FeatureConfig,
    view: View,
    table: pa.Table | None,
    created_us: int,
    label: str,
    files: list[Path],
) -> int:
    """Write ``table`` (engine output) as a new file of ``view``'s feature rows, appended to
    ``files``, unless it is empty; return its row count."""
    if table is None or table.num_rows == 0:
        return 0
    rows = feature_table(view, table, created_us=created_us)
    files.append(view_file_write(config, view, rows, label=label))
    return table.num_rows


def view_keys(config: FeatureConfig, view: View) -> set[tuple[str, ...]]:
    """Return every entity key of ``view`` that the archived event history holds."""
    return history_load(config.offline_dir / "events", views=[view], config=config).keys(view)


def recompute_as_of(
    config: FeatureConfig, samples: Sequence[tuple[str, tuple[str, ...], int]]
) -> list[dict[str, Any]]:
    """Recompute, over the archived event history, each sample's view values as of its instant.

    ``samples`` holds (view name, entity key, instant µs). A stream view's value as of ``t`` is
    its row at the entity's latest event at or before ``t`` (what the online store holds at
    ``t``): all ``None`` when there is none. A batch view's value is its snapshot at ``t``.
    Return one dict (feature name -> value) per sample, in order. Read only.
    """
    wanted: dict[str, set[tuple[str, ...]]] = {}
    for view_name, key, _ in samples:
        wanted.setdefault(view_name, set()).add(tuple(key))
    views = [VIEWS_BY_NAME[name] for name in wanted]
    loaded = history_load(config.offline_dir / "events", views=views, keys=wanted, config=config)
    results: list[dict[str, Any]] = []
    per_view: dict[str, dict[tuple[str, ...], list[tuple[int, dict[str, Any]]]]] = {}
    for view in views:
        if view.mode != "stream":
            continue
        table = loaded.stream_rows(view).to_pylist()
        by_key: dict[tuple[str, ...], list[tuple[int, dict[str, Any]]]] = {}
        for row in table:
            key = tuple(row[k] for k in key_columns(view))
            by_key.setdefault(key, []).append((row["ts"], row))
        per_view[view.name] = by_key
    for view_name, key, at in samples:
        view = VIEWS_BY_NAME[view_name]
        if view.mode != "stream":
            snap = [
                r
                for r in loaded.snapshot(view, at_us=at).to_pylist()
                if tuple(r[k] for k in key_columns(view)) == tuple(key)
            ]
            source = snap[0] if snap else {}
        else:
            # Rows are ordered by time; the last one at or before ``at`` is the one served.
            source = {}
            for ts, row in per_view[view_name].get(tuple(key), []):
                if ts > at:
                    break
                source = row
        results.append({f.name: source.get(f.name) for f in view.features})
    return results


def snapshots_written(config: FeatureConfig, view: View) -> list[int]:
    """Return the distinct instants (µs, ascending) of ``view``'s snapshots in the offline
    store, whoever wrote them (the beat, a backfill, a catch-up). Read only."""
    directory = config.view_dir(view.name)
    if not any(directory.glob("*.parquet")):
        return []
    glob = str(directory / "*.parquet").replace("'", "''")
    with duckdb_connect(config) as con:
        found = con.execute(
            f"SELECT DISTINCT epoch_us({EVENT_TIMESTAMP}) FROM read_parquet('{glob}') "  # noqa: S608
            "ORDER BY 1"
        ).fetchall()
    return [at for (at,) in found]


def snapshots_catch_up(
    config: FeatureConfig,
    *,
    every: timedelta,
    history: Path | None = None,
    views: Sequence[View] = BATCH_VIEWS,
) -> BackfillResult:
    """Write the batch snapshots the beat would have written over ``history`` (default: the
    stream processor's archive) had it run then: at each multiple of ``every`` since the epoch
    that the history covers, for each of ``views`` with no snapshot in the ``every`` up to it.

    A history that reaches the offline store through the stream (``simulate replay``, or a
    processor that ran while the beat did not) gets batch rows at its own instants, so a
    training set or backtest over it has batch features. Instants the beat covered are left
    alone: its snapshot is what the online store served then, and a training row must see what
    was served. Only instants at least the allowed lateness behind the newest archived event
    are written (events still on their way from slower partitions could change them).
    Idempotent: a second run over the same history writes nothing. One file per view and run
    (label ``catch-up``), ``created_timestamp`` = the run's wall time.
    """
    began = time.perf_counter()
    source = history if history is not None else config.offline_dir / "events"
    loaded = history_load(source, views=views, config=config)
    created_us = int(time.time() * 1_000_000)
    step = window_us(every)
    covered: list[int] = []
    if loaded.first_us is not None:
        last = loaded.last_us - config.allowed_lateness_us
        covered = list(range((loaded.first_us // step + 1) * step, last + 1, step))
    rows: dict[str, int] = {}
    files: list[Path] = []
    written: set[int] = set()
    for view in loaded.views:
        done = snapshots_written(config, view)
        # An instant is missing when no snapshot lies in (at - every, at].
        missing = [
            at
            for at in covered
            if (i := bisect.bisect_right(done, at)) == 0 or done[i - 1] <= at - step
        ]
        table = _snapshots(loaded, view, missing)
        rows[view.name] = _written(config, view, table, created_us, "catch-up", files)
        if rows[view.name]:
            written.update(missing)
    return BackfillResult(
        events=loaded.events,
        rows=rows,
        files=files,
        snapshots=sorted(written),
        seconds=time.perf_counter() - began,
    )
