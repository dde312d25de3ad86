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
request ever meets a row of another entity. Only the requested entities' rows up to the latest
instant are read, and, when every feature is windowed, none older than the earliest instant
less the longest window or the ttl. Figures: docs/features.md (Training sets).
"""

from __future__ import annotations

import uuid

import pyarrow as pa
import pyarrow.compute as pc

from features.definitions import View
from features.offline.history import History
from features.offline.sql import instant_sql, key_columns, window_us

REQUEST_ID = "request_id"
AT = "at"
_TYPES = {"int64": pa.int64(), "float64": pa.float64()}


def instant_requests(view: View, keys: list[tuple[str, ...]], at: list[int]) -> pa.Table:
    """Return the request table of ``view`` for entity ``keys`` at instants ``at`` (µs): its
    ``k0..`` columns, ``at``, and ``request_id`` = the position (0, 1, ...)."""
    columns = {
        name: pa.array([key[i] for key in keys], pa.string())
        for i, name in enumerate(key_columns(view))
    }
    columns[AT] = pa.array(at, pa.int64())
    columns[REQUEST_ID] = pa.array(range(len(at)), pa.int64())
    return pa.table(columns)


def instant_values(history: History, view: View, requests: pa.Table) -> pa.Table:
    """Return ``view``'s values at each request's instant over ``history``: one row per row of
    ``requests`` (``k0..`` strings, ``at`` µs since the epoch, ``request_id`` int64), ordered by
    ``request_id``; columns ``request_id``, then every feature of ``view`` in declaration order,
    typed as declared. Equal to ``features.windows.value_at(view, rows of the key, at)``, all
    null where that is ``None``. A key no row has (an empty one included) reads null. Read
    only."""
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
    history.con.register(name, typed)
    try:
        sql = instant_sql(
            view,
            requests=name,
            float_fields=history.float_fields[view.name],
            since=_since(view, typed),
        )
        out = history.con.sql(f"{sql} ORDER BY {REQUEST_ID}").to_arrow_table()
    finally:
        history.con.unregister(name)
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
