"""The DuckDB engine at arbitrary instants: each request (an entity key and an instant) gets a
view's values at its instant, ``features.windows.value_at`` in SQL: every row of the entity at
or before the instant counts (one at the instant too), windows slide (``at - window < ts <=
at``, however long ago the entity's last event was), and the whole view is null when the entity
has no row at or before the instant or its latest is older than the view's ttl. What a training
set reads for a stream view (``features.training``) and what the scorer is held to.

The shape: each request becomes a row of its entity's partition at ``ts = at`` that no kind
filter keeps, and the stream evaluation's window functions (``features.offline.sql``:
``RANGE BETWEEN <window - 1 µs> PRECEDING AND CURRENT ROW``, one template per aggregation kind,
the same float rules) are read at it. Why not a range join of requests x rows on the key with
``ts <= at`` and ``ts > at - window``: DuckDB runs it as a hash join on the key and filters the
pairs after, so every request of an entity meets every row of it, and the busiest entities are
the largest on both sides (one ``platform`` key, a few zones, a card in a burst): quadratic,
and worse for ``last`` and ``age_days``, which no window bounds. Rows and requests sorted once
per key cost ``(rows + requests) log``, the unbounded frames included (segment trees), and no
request ever meets a row of another entity. A view of counts alone (the fraud views: a hot key
such as the platform or a zone holds most requests) reads each window's count as the
difference of two running counts instead, found by ``ASOF`` joins: the request rows in a frame
cost even when no filter keeps them. Only the requested entities' rows up to the latest
instant are read, and, when every feature is windowed, none older than the earliest instant
less the longest window or the ttl. Figures: docs/performance.md (Training sets).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from features.definitions import View
from features.offline.history import History
from features.offline.sql import asof_sql, instant_sql, key_columns, window_us

REQUEST_ID = "request_id"
AT = "at"
_TYPES = {"int64": pa.int64(), "float64": pa.float64()}


def instant_requests(view: View, keys: list[tuple[str, ...]], at: list[int]) -> pa.Table:
    """Return the request table of ``view`` for entity ``keys`` at instants ``at`` (µs): its
    ``k0..`` columns, ``at``, and ``request_id`` = the position (0, 1, ...)."""
    columns = {
        join_key: pa.array([key[i] for key in keys], pa.string())
        for i, join_key in enumerate(view.join_keys)
    }
    return entity_requests(view, pa.table(columns), pa.array(at, pa.int64()))


def entity_requests(view: View, entities: pa.Table, at: pa.Array) -> pa.Table:
    """Return the request table of ``view`` for ``entities`` (a string column per join key of
    ``view``, named after it, among others) at instants ``at`` (µs, one per entity row)."""
    columns = {
        k: entities.column(join_key)
        for k, join_key in zip(key_columns(view), view.join_keys, strict=True)
    }
    columns[AT] = at
    columns[REQUEST_ID] = pa.array(np.arange(len(at), dtype=np.int64))
    return pa.table(columns)


def instant_values(history: History, view: View, requests: pa.Table) -> pa.Table:
    """Return ``view``'s values at each request's instant over ``history``: one row per row of
    ``requests`` (``k0..`` strings, ``at`` µs since the epoch, ``request_id`` int64), ordered by
    ``request_id``; columns ``request_id``, then every feature of ``view`` in declaration order,
    typed as declared. Equal to ``features.windows.value_at(view, rows of the key, at)``, all
    null where that is ``None``. A key no row has (an empty one included) reads null. Read
    only."""
    return _requests_query(
        history.con,
        view,
        requests,
        lambda name, typed: instant_sql(
            view,
            requests=name,
            float_fields=history.float_fields[view.name],
            since=_since(view, typed),
        ),
    )


def instant_snapshots(
    con: duckdb.DuckDBPyConnection, view: View, requests: pa.Table, *, files: list[Path]
) -> pa.Table:
    """Return the published snapshot of the batch ``view`` that each request reads at its
    instant, from the Parquet ``files`` of its feature rows (``features.tables.view_schema``):
    the latest at or before the instant (ties: the latest ``created_timestamp``), all null
    when there is none or it is older than the view's ttl, as a point-in-time join finds it.
    ``requests`` and the result as ``instant_values``. Read only."""
    if not files:
        schema = _schema(view)
        return pa.table(
            [
                requests.column(REQUEST_ID).cast(pa.int64()),
                *(pa.nulls(requests.num_rows, f.type) for f in list(schema)[1:]),
            ],
            schema=schema,
        )
    return _requests_query(
        con,
        view,
        requests,
        lambda name, _: asof_sql(view, requests=name, files=[str(f) for f in files]),
    )


def _requests_query(
    con: duckdb.DuckDBPyConnection,
    view: View,
    requests: pa.Table,
    sql: Callable[[str, pa.Table], str],
) -> pa.Table:
    """Run ``sql(name, requests)`` over ``requests`` registered as ``name``; return its rows
    ordered by ``request_id``, typed as ``view`` declares."""
    name = f"requests_{uuid.uuid4().hex[:12]}"
    typed = requests.select([*key_columns(view), AT, REQUEST_ID]).cast(
        pa.schema(
            [
                *(pa.field(k, pa.string()) for k in key_columns(view)),
                pa.field(AT, pa.int64()),
                pa.field(REQUEST_ID, pa.int64()),
            ]
        )
    )
    if typed.num_rows == 0:
        return _empty(view)
    con.register(name, typed)
    try:
        out = con.sql(f"{sql(name, typed)} ORDER BY {REQUEST_ID}").to_arrow_table()
    finally:
        con.unregister(name)
    return out.cast(_schema(view))


def _since(view: View, requests: pa.Table) -> int | None:
    """Return the earliest event time a request can read, ``None`` when a feature reads all
    history: the earliest instant less the longest window or the ttl (a row older than both
    is in no window and is no latest row within the ttl, so it changes no value)."""
    if view.horizon is None or view.ttl is None:
        return None
    earliest = pc.min(requests.column(AT)).as_py()
    return earliest - max(window_us(view.horizon), window_us(view.ttl))


def _schema(view: View) -> pa.Schema:
    return pa.schema(
        [pa.field(REQUEST_ID, pa.int64())]
        + [pa.field(f.name, _TYPES[f.dtype]) for f in view.features]
    )


def _empty(view: View) -> pa.Table:
    return _schema(view).empty_table()
