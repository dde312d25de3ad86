"""The DuckDB engine's SQL: the declared features compiled to one small template per
aggregation kind, evaluated as a stream (every row at its own time), as a snapshot at an
instant, or at the instants of requests (``features.offline`` says how); and the batch views'
published snapshots joined as of the instants of requests."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from features.definitions import (
    OCCURRED_AT,
    Aggregate,
    Ratio,
    View,
)
from features.windows import US_PER_DAY

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
    # Count, exact sum and sum of squares, reduced in an outer query (STD_SQL) by
    # windows.spread's formula.
    "std": (
        "struct_pack(n := count({v}) FILTER (WHERE {kinds}) {over},"
        " s := sum({v}) FILTER (WHERE {kinds}) {over},"
        " q := sum({v} * {v}) FILTER (WHERE {kinds}) {over})"
    ),
    "count_distinct": "count(DISTINCT {v}) FILTER (WHERE {kinds}) {over}",
    # arg_max_null keeps the latest row even when its value is null, as windows.evaluate does.
    "last": (
        "arg_max_null({v}, struct_pack(ts := ts, event_id := event_id))"
        " FILTER (WHERE {kinds}) {over}"
    ),
    # The values, sorted and reduced to the median in an outer query (MEDIAN_SQL): DuckDB's
    # median interpolates as a + (b - a) / 2, Python's statistics.median as (a + b) / 2.
    "median": "list_sort(list({v}) FILTER (WHERE {kinds} AND {v} IS NOT NULL) {over})",
    "age_days": f"({{at}} - min(ts) FILTER (WHERE {{kinds}}) {{over}}) / {US_PER_DAY}",
    # Over a frame without the current row's peers (PRIOR_SUFFIX) in a stream evaluation; with
    # ``ts < at`` in a snapshot's filter (_aggregate_sql).
    "since_previous": "({at} - max(ts) FILTER (WHERE {kinds}) {over}) / 1000000",
}
# The name suffix of a window that excludes the current row and its peers (same ts).
PRIOR_SUFFIX = "_prior"
MEDIAN_SQL = (
    "CASE WHEN len({l}) = 0 THEN NULL"
    " WHEN len({l}) % 2 = 1 THEN CAST({l}[len({l}) // 2 + 1] AS DOUBLE)"
    " ELSE ({l}[len({l}) // 2] + {l}[len({l}) // 2 + 1]) / 2 END"
)
STD_SQL = (
    "CASE WHEN {l}.n = 0 THEN NULL ELSE sqrt(greatest("
    "CAST({l}.q AS DOUBLE) / {l}.n"
    " - (CAST({l}.s AS DOUBLE) / {l}.n) * (CAST({l}.s AS DOUBLE) / {l}.n), 0.0)) END"
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


def window_us(window: timedelta) -> int:
    # As windows.evaluate computes it, so both engines draw the same boundary.
    return int(window.total_seconds() * 1_000_000)


def _value_sql(feature: Aggregate) -> str:
    if feature.field == OCCURRED_AT:
        return "(ts / 1000000)"
    return _ident(field_column(feature.field)) if feature.field else "NULL"


def _kinds_sql(kinds: tuple[str, ...]) -> str:
    return "kind IN (" + ", ".join(_quote(k) for k in kinds) + ")"


def _aggregate_sql(
    feature: Aggregate, *, over: str, at: str, window_filter: bool, float_fields: frozenset
) -> str:
    kinds = _kinds_sql(feature.kinds)
    if window_filter and feature.window is not None:
        kinds = f"{kinds} AND ts > {at} - {window_us(feature.window)}"
    if feature.agg == "since_previous":
        if over:
            over += PRIOR_SUFFIX
        else:
            kinds = f"{kinds} AND ts < {at}"
    expr = TEMPLATES[feature.agg].format(v=_value_sql(feature), kinds=kinds, over=over, at=at)
    if feature.agg in {"count", "count_distinct", "median", "std"}:
        return expr
    if feature.agg in {"sum", "last"} and feature.dtype == "int64":
        floating = feature.field == OCCURRED_AT or feature.field in float_fields
        # windows casts to the declared type: int() truncates a float, DuckDB's cast would round.
        return f"CAST(trunc({expr}) AS BIGINT)" if floating else f"CAST({expr} AS BIGINT)"
    # avg and age_days are a float division whatever the declared type, as in windows.
    return f"CAST({expr} AS DOUBLE)"


def _window_name(window: timedelta | None) -> str:
    return "w_all" if window is None else f"w_{window_us(window)}"


def _window_clause(view: View, *, unbounded: bool = False) -> str:
    """Return the named windows of ``view``'s aggregates (and ``w_all`` when ``unbounded``)."""
    partition = ", ".join(key_columns(view))
    clauses = {}
    windows = [(f.window, "") for f in view.aggregates] + ([(None, "")] if unbounded else [])
    windows += [(f.window, PRIOR_SUFFIX) for f in view.aggregates if f.agg == "since_previous"]
    for window, suffix in windows:
        name = _window_name(window) + suffix
        frame = "UNBOUNDED PRECEDING" if window is None else f"{window_us(window) - 1} PRECEDING"
        exclude = " EXCLUDE GROUP" if suffix else ""
        clauses[name] = (
            f"{name} AS (PARTITION BY {partition} ORDER BY ts "
            f"RANGE BETWEEN {frame} AND CURRENT ROW{exclude})"
        )
    return "WINDOW " + ", ".join(clauses.values())


def _outer_columns(view: View) -> list[str]:
    """The final feature columns: medians and deviations reduced, ratios computed from their
    two columns."""
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
        elif feature.agg == "std":
            columns.append(f"{STD_SQL.format(l=name)} AS {name}")
        else:
            columns.append(name)
    return columns


def _stream_aggregates(view: View, float_fields: frozenset) -> list[str]:
    """The aggregates of ``view`` over its named windows, each at the current row's ``ts``."""
    return [
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


def stream_sql(view: View, *, float_fields: frozenset = frozenset()) -> str:
    """Return the SQL giving every row of ``view``'s row table its values at its event time:
    columns ``k0..``, ``event_id``, ``ts``, then every feature, in declaration order."""
    keys = ", ".join(key_columns(view))
    inner = _stream_aggregates(view, float_fields)
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


def instant_sql(
    view: View,
    *,
    requests: str,
    float_fields: frozenset = frozenset(),
    since: int | None = None,
) -> str:
    """Return the SQL giving each request of the table ``requests`` (``k0..``, ``at`` µs,
    ``request_id``) ``view``'s values at its instant (``features.windows.value_at``): columns
    ``request_id``, then every feature, in declaration order, all null where the entity has no
    row at or before ``at`` or its latest is older than the view's ttl.

    Each request joins its entity's rows as a row of its own at ``ts = at`` that no kind
    filter keeps, so the stream evaluation's windows, evaluated at it, hold exactly the rows
    with ``at - window < ts <= at`` (those at ``at`` are its peers). A view of counts alone
    takes ``_prefix_count_sql`` instead. Only the requested entities' rows up to the latest
    instant are read; ``since`` (µs), when given, drops rows before it too (the caller's
    bound: no window or ttl reaches that far back)."""
    if view.aggregates and all(f.agg == "count" for f in view.aggregates):
        return _prefix_count_sql(view, requests=requests, since=since)
    keys = ", ".join(key_columns(view))
    columns = ", ".join(
        [*key_columns(view), "event_id", "ts", "kind", *map(_ident, _field_columns(view))]
    )
    rows = (
        f"SELECT {columns}, CAST(NULL AS BIGINT) AS request_id "
        f"{_requested_rows(view, requests=requests, since=since)}"
    )
    asked = f'SELECT {keys}, "at" AS ts, request_id FROM {requests}'  # noqa: S608
    inner = _stream_aggregates(view, float_fields)
    # The latest of the entity's rows at or before the instant: the request rows have no kind.
    latest = "max(ts) FILTER (WHERE request_id IS NULL) OVER w_all AS __latest"
    return _masked_sql(
        view,
        f"SELECT request_id, ts AS __at, {latest}, {', '.join(inner)} "  # noqa: S608
        f"FROM ({rows} UNION ALL BY NAME {asked}) {_window_clause(view, unbounded=True)}",
    )


def _requested_rows(view: View, *, requests: str, since: int | None) -> str:
    """Return the FROM and WHERE clauses of ``view``'s rows of the requested entities up to
    the latest instant (and from ``since`` on, when given)."""
    keys = ", ".join(key_columns(view))
    bounds = f'ts <= (SELECT max("at") FROM {requests})'  # noqa: S608
    if since is not None:
        bounds += f" AND ts >= {int(since)}"
    return (
        f"FROM {table_name(view)} SEMI JOIN (SELECT DISTINCT {keys} FROM {requests}) "  # noqa: S608
        f"USING ({keys}) WHERE {bounds}"
    )


def _masked_sql(view: View, inner: str) -> str:
    """Return the final columns over ``inner`` (``request_id`` null for the entities' own rows,
    ``__at``, ``__latest``, every aggregate): ratios and medians computed, all null where the
    entity had no row at or before the instant or its latest is older than the ttl."""
    outer = ", ".join(_outer_columns(view))
    masked = _ttl_masked(view, latest="__latest", at="__at")
    return (
        f"SELECT request_id, {masked} FROM ("  # noqa: S608
        f"SELECT request_id, __at, __latest, {outer} FROM ({inner}) "
        "WHERE request_id IS NOT NULL)"
    )


def _ttl_masked(view: View, *, latest: str, at: str, source: str = "") -> str:
    """Return ``view``'s feature columns (read from ``source``), all null where the entity's
    latest row (``latest``: its event time, null when none) is missing or older than the
    view's ttl at the instant ``at``: the one null rule of the point-in-time join."""
    expired = f"{latest} IS NULL"
    if view.ttl is not None:
        expired += f" OR {latest} < {at} - {window_us(view.ttl)}"
    return ", ".join(
        f"CASE WHEN {expired} THEN NULL ELSE {source}{_ident(f.name)} END AS {_ident(f.name)}"
        for f in view.features
    )


def _prefix_count_sql(view: View, *, requests: str, since: int | None) -> str:
    """Return ``instant_sql`` for a view of counts alone: a window's count at ``at`` is the
    count of the entity's rows at or before ``at`` less the count at or before
    ``at - window``, each read from the rows' running counts by an ``ASOF`` join.

    Why not the requests as rows of the partition: the request rows fill every frame, so a
    hot key (the platform, a zone) holding most of a large spine's requests costs as many
    frames as requests, each as long as the requests in a window (docs/performance.md,
    Training sets); here the running counts are over the entity's rows alone and each request
    costs one join per window."""
    keys = key_columns(view)
    kinds = list(dict.fromkeys(f.kinds for f in view.aggregates))
    windows = sorted({window_us(f.window) for f in view.aggregates if f.window is not None})
    running = ", ".join(
        f"CAST(sum(count(*) FILTER (WHERE {_kinds_sql(view_kinds)})) OVER "
        f"(PARTITION BY {', '.join(keys)} ORDER BY ts ROWS UNBOUNDED PRECEDING) AS BIGINT) "
        f"AS c{i}"
        for i, view_kinds in enumerate(kinds)
    )
    counts = (
        f"SELECT {', '.join(keys)}, ts, {running} "
        f"{_requested_rows(view, requests=requests, since=since)} GROUP BY {', '.join(keys)}, ts"
    )
    shifted = ", ".join(f'"at" - {w} AS __at_{w}' for w in windows)
    joins = [f'ASOF LEFT JOIN counts n ON {_keys_equal(keys, "n")} AND r."at" >= n.ts']
    joins += [
        f"ASOF LEFT JOIN counts n{w} ON {_keys_equal(keys, f'n{w}')} AND r.__at_{w} >= n{w}.ts"
        for w in windows
    ]
    values = []
    for f in view.aggregates:
        column = f"c{kinds.index(f.kinds)}"
        value = f"coalesce(n.{column}, 0)"
        if f.window is not None:
            value += f" - coalesce(n{window_us(f.window)}.{column}, 0)"
        values.append(f"{value} AS {_ident(f.name)}")
    return _masked_sql(
        view,
        f"WITH counts AS ({counts}) "  # noqa: S608
        f'SELECT r.request_id, r."at" AS __at, n.ts AS __latest, {", ".join(values)} '
        f"FROM (SELECT *{', ' + shifted if shifted else ''} FROM {requests}) r {' '.join(joins)}",
    )


def _keys_equal(keys: list[str], right: str) -> str:
    return " AND ".join(f"r.{k} = {right}.{k}" for k in keys)


def _field_columns(view: View) -> list[str]:
    return [field_column(name) for name in view.source_fields()]


def asof_sql(view: View, *, requests: str, files: list[str]) -> str:
    """Return the SQL giving each request of the table ``requests`` (``k0..``, ``at`` µs,
    ``request_id``) the feature row of ``files`` (Parquet of ``features.tables.view_schema``)
    that a point-in-time join picks: the latest row of the entity with ``event_timestamp`` at
    or before ``at`` (of rows with the same ``event_timestamp``, the latest
    ``created_timestamp``), all null when there is none or it is older than the view's ttl
    (``event_timestamp < at - ttl``). Columns ``request_id``, then every feature, in declaration
    order. Only the requested entities' rows between the earliest instant less the ttl and the
    latest instant are read."""
    keys = ", ".join(key_columns(view))
    renamed = ", ".join(
        f"{_ident(join_key)} AS {k}"
        for join_key, k in zip(view.join_keys, key_columns(view), strict=True)
    )
    features = ", ".join(_ident(f.name) for f in view.features)
    source = (
        f"SELECT {renamed}, epoch_us(event_timestamp) AS ts, created_timestamp, {features} "  # noqa: S608
        f"FROM read_parquet([{', '.join(_quote(f) for f in files)}], union_by_name = true)"
    )
    bounds = f'ts <= (SELECT max("at") FROM {requests})'  # noqa: S608
    if view.ttl is not None:
        earliest = f'(SELECT min("at") FROM {requests})'  # noqa: S608
        bounds += f" AND ts >= {earliest} - {window_us(view.ttl)}"
    rows = (
        f"SELECT {keys}, ts, {features} FROM ({source}) "  # noqa: S608
        f"SEMI JOIN (SELECT DISTINCT {keys} FROM {requests}) USING ({keys}) WHERE {bounds} "
        f"QUALIFY row_number() OVER (PARTITION BY {keys}, ts ORDER BY created_timestamp DESC) = 1"
    )
    masked = _ttl_masked(view, latest="s.ts", at='r."at"', source="s.")
    on = " AND ".join([*(f"r.{k} = s.{k}" for k in key_columns(view)), 'r."at" >= s.ts'])
    return (
        f"SELECT r.request_id, {masked} FROM {requests} r "  # noqa: S608
        f"ASOF LEFT JOIN ({rows}) s ON {on}"
    )
