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

Two evaluations (semantics in ``features.definitions``):

- stream: every row's values at its own event time (window functions partitioned by the key,
  ordered by ``ts``, ``RANGE BETWEEN <window - 1 µs> PRECEDING AND CURRENT ROW``, so
  ``t - window < ts <= t`` with ties at ``t`` included);
- snapshot: every entity with a row at or before ``T``, its values at ``T`` (``GROUP BY`` the key,
  the window as a filter).

Floats are computed as ``windows`` computes them (``occurred_at`` is ``ts / 1e6``; averages of
integers are the exact sum divided once; the median sorts and takes the middle one or the mean of
the middle two), so both engines agree exactly.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from events.contracts import schema_for
from features.definitions import (
    OCCURRED_AT,
    VIEWS,
    VIEWS_BY_NAME,
    Aggregate,
    Ratio,
    View,
)
from features.store import FeatureConfig
from features.tables import CREATED_TIMESTAMP, EVENT_TIMESTAMP, view_schema
from features.windows import US_PER_DAY, Row, extract, to_us

# One template per aggregation kind. ``{v}`` is the aggregated value, ``{kinds}`` the filter on
# the feature's event kinds (plus the window in a snapshot), ``{over}`` the window clause of a
# stream evaluation (empty in a snapshot), ``{at}`` the evaluation instant (µs).
TEMPLATES: Mapping[str, str] = {
    "count": "count(*) FILTER (WHERE {kinds}) {over}",
    "sum": "coalesce(sum({v}) FILTER (WHERE {kinds}) {over}, 0)",
    # The exact sum divided once, as Python's sum(values) / len(values) does.
    "avg": (
        "CAST(sum({v}) FILTER (WHERE {kinds}) {over} AS DOUBLE)"
        " / nullif(count({v}) FILTER (WHERE {kinds}) {over}, 0)"
    ),
    "count_distinct": "count(DISTINCT {v}) FILTER (WHERE {kinds}) {over}",
    # arg_max_null keeps the latest row even when its value is null, as windows.aggregate does.
    "last": (
        "arg_max_null({v}, struct_pack(ts := ts, event_id := event_id))"
        " FILTER (WHERE {kinds}) {over}"
    ),
    # The values, sorted and reduced to the median in an outer query (MEDIAN_SQL): DuckDB's
    # median interpolates as a + (b - a) / 2, Python's statistics.median as (a + b) / 2.
    "median": "list_sort(list({v}) FILTER (WHERE {kinds} AND {v} IS NOT NULL) {over})",
    "age_days": f"({{at}} - min(ts) FILTER (WHERE {{kinds}}) {{over}}) / {US_PER_DAY}",
}
MEDIAN_SQL = (
    "CASE WHEN len({l}) = 0 THEN NULL"
    " WHEN len({l}) % 2 = 1 THEN CAST({l}[len({l}) // 2 + 1] AS DOUBLE)"
    " ELSE ({l}[len({l}) // 2] + {l}[len({l}) // 2 + 1]) / 2 END"
)
RATIO_SQL = "CASE WHEN {d} IS NULL OR {d} = 0 OR {n} IS NULL THEN NULL ELSE {n} / {d} END"

HISTORY_COLUMNS = ["event_id", "occurred_at", "payload"]


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def table_name(view: View) -> str:
    return f"rows_{view.name}"


def key_columns(view: View) -> list[str]:
    return [f"k{i}" for i in range(len(view.entities))]


def field_column(name: str) -> str:
    return f"f_{name}"


def _window_us(window: timedelta) -> int:
    # As windows.aggregate computes it, so both engines draw the same boundary.
    return int(window.total_seconds() * 1_000_000)


def _value_sql(feature: Aggregate) -> str:
    if feature.field == OCCURRED_AT:
        return "(ts / 1000000)"
    return _ident(field_column(feature.field)) if feature.field else "NULL"


def _kinds_sql(feature: Aggregate) -> str:
    return "kind IN (" + ", ".join(_quote(k) for k in feature.kinds) + ")"


def _aggregate_sql(
    feature: Aggregate, *, over: str, at: str, window_filter: bool, float_fields: frozenset
) -> str:
    kinds = _kinds_sql(feature)
    if window_filter and feature.window is not None:
        kinds = f"{kinds} AND ts > {at} - {_window_us(feature.window)}"
    expr = TEMPLATES[feature.agg].format(v=_value_sql(feature), kinds=kinds, over=over, at=at)
    if feature.agg in {"count", "count_distinct", "median"}:
        return expr
    if feature.agg in {"sum", "last"} and feature.dtype == "int64":
        floating = feature.field == OCCURRED_AT or feature.field in float_fields
        # windows casts to the declared type: int() truncates a float, DuckDB's cast would round.
        return f"CAST(trunc({expr}) AS BIGINT)" if floating else f"CAST({expr} AS BIGINT)"
    # avg and age_days are a float division whatever the declared type, as in windows.
    return f"CAST({expr} AS DOUBLE)"


def _window_name(window: timedelta | None) -> str:
    return "w_all" if window is None else f"w_{_window_us(window)}"


def _window_clause(view: View) -> str:
    partition = ", ".join(key_columns(view))
    clauses = {}
    for feature in view.aggregates:
        name = _window_name(feature.window)
        frame = (
            "UNBOUNDED PRECEDING"
            if feature.window is None
            else f"{_window_us(feature.window) - 1} PRECEDING"
        )
        clauses[name] = (
            f"{name} AS (PARTITION BY {partition} ORDER BY ts "
            f"RANGE BETWEEN {frame} AND CURRENT ROW)"
        )
    return "WINDOW " + ", ".join(clauses.values())


def _outer_columns(view: View) -> list[str]:
    """The final feature columns: medians reduced, ratios computed from their two columns."""
    columns = []
    for feature in view.features:
        name = _ident(feature.name)
        if isinstance(feature, Ratio):
            n, d = _ident(feature.numerator), _ident(feature.denominator)
            # A float division, as windows.ratio computes it.
            expr = RATIO_SQL.format(n=f"CAST({n} AS DOUBLE)", d=d)
            columns.append(f"{expr} AS {name}")
        elif feature.agg == "median":
            columns.append(f"{MEDIAN_SQL.format(l=name)} AS {name}")
        else:
            columns.append(name)
    return columns


def stream_sql(view: View, *, float_fields: frozenset = frozenset()) -> str:
    """Return the SQL giving every row of ``view``'s row table its values at its event time:
    columns ``k0..``, ``event_id``, ``ts``, then every feature, in declaration order."""
    keys = ", ".join(key_columns(view))
    inner = [
        _aggregate_sql(
            f,
            over=f"OVER {_window_name(f.window)}",
            at="ts",
            window_filter=False,
            float_fields=float_fields,
        )
        + f" AS {_ident(f.name)}"
        for f in view.aggregates
    ]
    outer = ", ".join(_outer_columns(view))
    return (
        f"SELECT {keys}, event_id, ts, {outer} FROM ("  # noqa: S608
        f"SELECT {keys}, event_id, ts, {', '.join(inner)} "
        f"FROM {table_name(view)} {_window_clause(view)})"
    )


def snapshot_sql(view: View, *, at: int, float_fields: frozenset = frozenset()) -> str:
    """Return the SQL giving every entity of ``view`` with a row at or before ``at`` (µs) its
    values at ``at``: columns ``k0..``, ``ts`` (= ``at``), then every feature."""
    keys = ", ".join(key_columns(view))
    inner = [
        _aggregate_sql(f, over="", at=str(at), window_filter=True, float_fields=float_fields)
        + f" AS {_ident(f.name)}"
        for f in view.aggregates
    ]
    outer = ", ".join(_outer_columns(view))
    return (
        f"SELECT {keys}, CAST({at} AS BIGINT) AS ts, {outer} FROM ("  # noqa: S608
        f"SELECT {keys}, {', '.join(inner)} FROM {table_name(view)} "
        f"WHERE ts <= {at} GROUP BY {keys})"
    )


def history_files(history: Path) -> dict[str, list[Path]]:
    """Return topic -> Parquet files of an event history under ``history``.

    Accept the simulator's layout (``<history>/events/<topic>.parquet``) and the stream
    processor's archive (``<history>/<topic>/*.parquet`` under ``offline/events``, or a data
    directory holding ``offline/events``). Topics may carry a namespace prefix.
    """
    for candidate in (history / "events", history / "offline" / "events", history):
        if candidate.is_dir():
            root = candidate
            break
    else:
        return {}
    files: dict[str, list[Path]] = {}
    for entry in sorted(root.iterdir()):
        if entry.is_file() and entry.suffix == ".parquet":
            files.setdefault(entry.stem, []).append(entry)
        elif entry.is_dir():
            parts = sorted(entry.glob("*.parquet"))
            if parts:
                files.setdefault(entry.name, []).extend(parts)
    return {topic: paths for topic, paths in files.items() if schema_for(topic) is not None}


def _field_array(values: list[Any]) -> pa.Array:
    try:
        array = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # Mixed types in one field: compare them as text, the only common ground.
        array = pa.array([None if v is None else str(v) for v in values], pa.string())
    if pa.types.is_null(array.type):
        return array.cast(pa.int64())
    return array


@dataclass
class History:
    """An event history normalised into one DuckDB table of rows per view."""

    con: duckdb.DuckDBPyConnection
    views: tuple[View, ...]
    events: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    float_fields: dict[str, frozenset] = field(default_factory=dict)
    first_us: int | None = None
    last_us: int | None = None

    def stream_rows(
        self, view: View, *, start_us: int | None = None, end_us: int | None = None
    ) -> pa.Table:
        """Return ``view``'s rows with their values at their own event time, for rows with
        ``start_us <= ts < end_us`` (values still see the whole history), ordered by key and
        time: columns ``k0..``, ``event_id``, ``ts``, then the features."""
        where = []
        if start_us is not None:
            where.append(f"ts >= {int(start_us)}")
        if end_us is not None:
            where.append(f"ts < {int(end_us)}")
        sql = stream_sql(view, float_fields=self.float_fields[view.name])
        if where:
            sql = f"SELECT * FROM ({sql}) WHERE {' AND '.join(where)}"  # noqa: S608
        keys = ", ".join(key_columns(view))
        return self.con.sql(f"{sql} ORDER BY {keys}, ts, event_id").to_arrow_table()

    def snapshot(self, view: View, *, at_us: int) -> pa.Table:
        """Return ``view``'s values at ``at_us`` for every entity with a row at or before it:
        columns ``k0..``, ``ts`` (= ``at_us``), then the features, ordered by key."""
        sql = snapshot_sql(view, at=int(at_us), float_fields=self.float_fields[view.name])
        return self.con.sql(f"{sql} ORDER BY {', '.join(key_columns(view))}").to_arrow_table()

    def keys(self, view: View) -> set[tuple[str, ...]]:
        """Return every entity key ``view``'s rows hold."""
        keys = ", ".join(key_columns(view))
        sql = f"SELECT DISTINCT {keys} FROM {table_name(view)}"  # noqa: S608
        return {tuple(row) for row in self.con.sql(sql).fetchall()}


def history_load(
    history: Path | Iterable[tuple[str, pa.Table]],
    *,
    views: Sequence[View] = VIEWS,
    keys: Mapping[str, set[tuple[str, ...]]] | None = None,
) -> History:
    """Normalise an event history into per-view rows in a new in-memory DuckDB database.

    ``history`` is a directory (``history_files``) or (topic, Arrow table of event_id,
    occurred_at, payload) pairs. Every event goes through ``features.windows.extract``, then
    ``rows_load``. Read only: nothing is written.
    """
    views = tuple(views)
    wanted = {s.topic for v in views for s in v.sources}
    batches = _history_tables(history) if isinstance(history, Path) else history
    span = {"events": 0, "first": None, "last": None}

    def rows() -> Iterator[Row]:
        for topic, table in batches:
            schema = schema_for(topic)
            if schema is None or schema.topic not in wanted or table.num_rows == 0:
                continue
            stamps = pc.cast(table.column("occurred_at"), pa.timestamp("us", tz="UTC"))
            for event_id, ts, payload in zip(
                table.column("event_id").to_pylist(),
                stamps.cast(pa.int64()).to_pylist(),
                table.column("payload").to_pylist(),
                strict=True,
            ):
                span["events"] += 1
                span["first"] = ts if span["first"] is None else min(span["first"], ts)
                span["last"] = ts if span["last"] is None else max(span["last"], ts)
                yield from extract(
                    topic, json.loads(payload), event_id=event_id, ts=ts, views=views
                )

    loaded = rows_load(rows(), views=views, keys=keys)
    loaded.events = span["events"]
    loaded.first_us, loaded.last_us = span["first"], span["last"]
    return loaded


def rows_load(
    rows: Iterable[Row],
    *,
    views: Sequence[View],
    keys: Mapping[str, set[tuple[str, ...]]] | None = None,
) -> History:
    """Load ``rows`` (``features.windows.Row``) into one DuckDB table per view of ``views``.

    A row repeated with the same (view, key, event_id, kind), such as an event archived twice
    after a replay, is kept once. ``keys`` (view name -> entity keys) keeps only those entities'
    rows. ``first_us``/``last_us`` of the result span the rows' event times.
    """
    views = tuple(views)
    by_name = {v.name: v for v in views}
    columns: dict[str, dict[str, list]] = {
        v.name: {
            **{k: [] for k in key_columns(v)},
            "event_id": [],
            "ts": [],
            "kind": [],
            **{field_column(f): [] for f in v.source_fields()},
        }
        for v in views
    }
    seen: set[tuple] = set()
    first_us = last_us = None
    for row in rows:
        view = by_name.get(row.view)
        identity = (row.view, row.key, row.event_id, row.kind)
        if view is None or identity in seen:
            continue
        if keys is not None and row.key not in keys.get(row.view, ()):
            continue
        seen.add(identity)
        first_us = row.ts if first_us is None else min(first_us, row.ts)
        last_us = row.ts if last_us is None else max(last_us, row.ts)
        cols = columns[row.view]
        for name, part in zip(key_columns(view), row.key, strict=True):
            cols[name].append(part)
        cols["event_id"].append(row.event_id)
        cols["ts"].append(row.ts)
        cols["kind"].append(row.kind)
        for name in view.source_fields():
            cols[field_column(name)].append(row.fields.get(name))
    con = duckdb.connect()
    loaded = History(con=con, views=views, events=len(seen), first_us=first_us, last_us=last_us)
    for view in views:
        arrays = {}
        for name, values in columns[view.name].items():
            if name == "ts":
                arrays[name] = pa.array(values, pa.int64())
            elif name.startswith("f_"):
                arrays[name] = _field_array(values)
            else:
                arrays[name] = pa.array(values, pa.string())
        table = pa.table(arrays)
        con.from_arrow(table).create(table_name(view))
        loaded.rows[view.name] = table.num_rows
        loaded.float_fields[view.name] = frozenset(
            name[2:]
            for name, array in arrays.items()
            if name.startswith("f_") and pa.types.is_floating(array.type)
        )
    return loaded


def _history_tables(history: Path) -> Iterator[tuple[str, pa.Table]]:
    for topic, paths in history_files(history).items():
        for path in paths:
            yield topic, pq.read_table(path, columns=HISTORY_COLUMNS)


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
    step = _window_us(every)
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
    loaded = history_load(history, views=views)
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
            parts = [loaded.snapshot(view, at_us=at) for at in instants]
            table = pa.concat_tables(parts) if parts else None
        if table is None or table.num_rows == 0:
            rows[view.name] = 0
            continue
        rows[view.name] = table.num_rows
        files.append(
            view_file_write(
                config, view, feature_table(view, table, created_us=created_us), label="backfill"
            )
        )
    return BackfillResult(
        events=loaded.events,
        rows=rows,
        files=files,
        snapshots=instants,
        seconds=time.perf_counter() - began,
    )


def view_keys(config: FeatureConfig, view: View) -> set[tuple[str, ...]]:
    """Return every entity key of ``view`` that the archived event history holds."""
    return history_load(config.offline_dir / "events", views=[view]).keys(view)


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
    loaded = history_load(config.offline_dir / "events", views=views, keys=wanted)
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
