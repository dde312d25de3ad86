"""The DuckDB engine's inputs: the archived event history (Parquet per topic) read back, turned
into rows by ``features.windows.extract`` and loaded as one Arrow table per view."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from events.contracts import schema_for
from features.definitions import (
    VIEWS,
    View,
)
from features.offline.sql import (
    HISTORY_COLUMNS,
    field_column,
    key_columns,
    snapshot_sql,
    stream_sql,
    table_name,
)
from features.store import FeatureConfig, duckdb_connect
from features.windows import Row, extract


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
    config: FeatureConfig | None = None,
) -> History:
    """Normalise an event history into per-view rows in a new in-memory DuckDB database
    (``features.store.duckdb_connect``: ``config``'s memory limit and spill directory).

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

    loaded = rows_load(rows(), views=views, keys=keys, config=config)
    loaded.events = span["events"]
    loaded.first_us, loaded.last_us = span["first"], span["last"]
    return loaded


def rows_load(
    rows: Iterable[Row],
    *,
    views: Sequence[View],
    keys: Mapping[str, set[tuple[str, ...]]] | None = None,
    config: FeatureConfig | None = None,
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
    con = duckdb_connect(config)
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
