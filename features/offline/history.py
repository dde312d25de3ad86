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
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # Mixed types in one field: compare them as text, the only common ground.
        return pa.array([None if v is None else str(v) for v in values], pa.string())


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

    ``history`` is a directory (``history_files``, read ``BATCH_EVENTS`` events at a time) or
    (topic, Arrow table of event_id, occurred_at, payload) pairs. Every event goes through
    ``features.windows.extract``, then ``rows_load``. Read only: nothing is written.
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
    """Load ``rows`` (``features.windows.Row``) into one DuckDB table per view of ``views``,
    ``CHUNK_ROWS`` rows of a view at a time (Python holds one chunk per view, DuckDB the rest,
    spilling past ``config``'s memory limit).

    A row repeated with the same (view, key, event_id, kind), such as an event archived twice
    after a replay, is kept once (its first). ``keys`` (view name -> entity keys) keeps only
    those entities' rows. ``first_us``/``last_us`` of the result span the rows' event times.
    """
    views = tuple(views)
    con = duckdb_connect(config)
    staged = {v.name: _StagedRows(con, v) for v in views}
    first_us = last_us = None
    for order, row in enumerate(rows):
        stage = staged.get(row.view)
        if stage is None or (keys is not None and row.key not in keys.get(row.view, ())):
            continue
        first_us = row.ts if first_us is None else min(first_us, row.ts)
        last_us = row.ts if last_us is None else max(last_us, row.ts)
        stage.add(row, order)
    loaded = History(con=con, views=views, first_us=first_us, last_us=last_us)
    for view in views:
        loaded.rows[view.name], loaded.float_fields[view.name] = staged[view.name].table()
    loaded.events = sum(loaded.rows.values())
    return loaded


# Rows of one view gathered in Python lists before they go to DuckDB as one Arrow table.
CHUNK_ROWS = 65_536
_ORDER = "__order"


class _StagedRows:
    """One view's rows on their way into DuckDB: a chunk of Python lists, the chunks before it
    staged as tables of their own (each field typed by its chunk's values), then one table."""

    def __init__(self, con: duckdb.DuckDBPyConnection, view: View) -> None:
        self.con, self.view = con, view
        self.keys = key_columns(view)
        self.fields = view.source_fields()
        self.chunks: list[tuple[str, pa.Schema]] = []
        self.columns = self._empty()

    def _empty(self) -> dict[str, list]:
        return {
            **{k: [] for k in self.keys},
            "event_id": [],
            "ts": [],
            "kind": [],
            _ORDER: [],
            **{field_column(f): [] for f in self.fields},
        }

    def add(self, row: Row, order: int) -> None:
        cols = self.columns
        for name, part in zip(self.keys, row.key, strict=True):
            cols[name].append(part)
        cols["event_id"].append(row.event_id)
        cols["ts"].append(row.ts)
        cols["kind"].append(row.kind)
        cols[_ORDER].append(order)
        for name in self.fields:
            cols[field_column(name)].append(row.fields.get(name))
        if len(cols["ts"]) >= CHUNK_ROWS:
            self._flush()

    def _flush(self) -> None:
        arrays = {}
        for name, values in self.columns.items():
            if name in {"ts", _ORDER}:
                arrays[name] = pa.array(values, pa.int64())
            elif name.startswith("f_"):
                arrays[name] = _field_array(values)
            else:
                arrays[name] = pa.array(values, pa.string())
        table = pa.table(arrays)
        name = f"__stage_{table_name(self.view)}_{len(self.chunks)}"
        self.con.from_arrow(table).create(name)
        self.chunks.append((name, table.schema))
        self.columns = self._empty()

    def table(self) -> tuple[int, frozenset]:
        """Create the view's table from the staged chunks, each field of one type (numbers
        mixing integers and floats as floats, anything else mixed as text, all null as
        integers), each repeated row kept once; drop the chunks. Return its row count and
        its floating fields."""
        if self.columns["ts"] or not self.chunks:
            self._flush()
        types = {
            name: _common_type([schema.field(name).type for _, schema in self.chunks])
            for name in map(field_column, self.fields)
        }
        parts = []
        for name, schema in self.chunks:
            mismatched = [f for f, t in types.items() if schema.field(f).type != t]
            if mismatched:
                self._retype(name, mismatched, types)
            parts.append(f"SELECT * FROM {name}")  # noqa: S608
        keys = ", ".join(self.keys)
        columns = ", ".join([*self.keys, "event_id", "ts", "kind", *(f'"{f}"' for f in types)])
        self.con.execute(
            f"CREATE TABLE {table_name(self.view)} AS SELECT {columns} FROM ("  # noqa: S608
            f"{' UNION ALL '.join(parts)}) QUALIFY row_number() OVER "
            f"(PARTITION BY {keys}, event_id, kind ORDER BY {_ORDER}) = 1"
        )
        for name, _ in self.chunks:
            self.con.execute(f"DROP TABLE {name}")
        ((count,),) = self.con.sql(f"SELECT count(*) FROM {table_name(self.view)}").fetchall()  # noqa: S608
        floats = frozenset(f[2:] for f, t in types.items() if pa.types.is_floating(t))
        return count, floats

    def _retype(self, name: str, fields: list[str], types: dict[str, pa.DataType]) -> None:
        """Replace the staged chunk ``name`` with its ``fields`` converted to ``types``."""
        table = self.con.table(name).to_arrow_table()
        for column_name in fields:
            target = types[column_name]
            column = table.column(column_name)
            if pa.types.is_string(target):
                values = column.to_pylist()
                converted = pa.array([None if v is None else str(v) for v in values], target)
            else:
                converted = column.cast(target)
            index = table.schema.get_field_index(column_name)
            table = table.set_column(index, column_name, converted)
        self.con.execute(f"DROP TABLE {name}")
        self.con.from_arrow(table).create(name)


def _common_type(types: list[pa.DataType]) -> pa.DataType:
    """Return the type one Arrow conversion of every chunk's values together would give."""
    known = {t for t in types if not pa.types.is_null(t)}
    if not known:
        return pa.int64()
    if len(known) == 1:
        return known.pop()
    if all(pa.types.is_integer(t) or pa.types.is_floating(t) for t in known):
        return pa.float64()
    return pa.string()


# Events read from a Parquet file at a time: their payloads are Python strings while extracted.
BATCH_EVENTS = 65_536


def _history_tables(history: Path) -> Iterator[tuple[str, pa.Table]]:
    for topic, paths in history_files(history).items():
        for path in paths:
            for batch in pq.ParquetFile(path).iter_batches(
                batch_size=BATCH_EVENTS, columns=HISTORY_COLUMNS
            ):
                yield topic, pa.Table.from_batches([batch])
