"""Window maths, shared by every engine that runs in Python: events become rows, rows become
feature values. The semantics are documented in ``features.definitions``; the DuckDB engine
(``features.offline``) implements the same ones in SQL, and tests hold the two equal.

Pure Python: no Django, no Feast, no I/O.
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from events.contracts import schema_for
from features.definitions import (
    OCCURRED_AT,
    VIEWS,
    Aggregate,
    Derived,
    Ratio,
    Source,
    View,
)

US_PER_DAY = 86_400_000_000


@dataclass(frozen=True, slots=True)
class Row:
    """One event as one view sees it: the entity key, when, what kind, the fields it carries."""

    view: str
    key: tuple[str, ...]
    event_id: str
    ts: int  # event time, microseconds since the epoch (UTC)
    kind: str
    fields: Mapping[str, Any]


def to_us(moment: datetime) -> int:
    """Return ``moment`` (timezone-aware) in whole microseconds since the epoch."""
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")


def moment(us: int) -> datetime:
    """Return ``us`` (µs since the epoch) as an aware UTC datetime: ``to_us``'s inverse."""
    return EPOCH + timedelta(microseconds=us)


@functools.cache
def _parts(path: str) -> tuple[str, ...]:
    return tuple(path.split("."))


def path_value(payload: Mapping[str, Any], path: str) -> Any:
    """Return the value at ``path`` in ``payload`` (dotted for nested objects: ``context.ip``;
    ``=text`` is the constant ``text``), None where it is missing."""
    if path.startswith("="):
        return path[1:]
    value: Any = payload
    for part in _parts(path):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _field(payload: Mapping[str, Any], spec: str | Derived) -> Any:
    if isinstance(spec, Derived):
        return spec.fn(*(path_value(payload, p) for p in spec.paths))
    return path_value(payload, spec)


def _matches(source: Source, payload: Mapping[str, Any]) -> bool:
    for path, expected in source.where.items():
        value = path_value(payload, path)
        if value is None:
            return False
        if callable(expected):
            if not expected(value):
                return False
        elif expected is not None and value != expected:
            return False
    return True


def _declared(topic: str) -> str | None:
    schema = schema_for(topic)
    return schema.topic if schema is not None else None


def extract(
    topic: str,
    payload: Mapping[str, Any],
    *,
    event_id: str,
    ts: int,
    views: Sequence[View] = VIEWS,
) -> list[Row]:
    """Return the rows ``payload`` (an event of ``topic``, as decoded JSON) contributes to
    ``views``: one per (view, source) whose topic and filter it matches and whose keys it has.

    ``topic`` may carry a namespace prefix (``<namespace>.<declared topic>``).
    """
    declared = _declared(topic)
    rows = []
    for view in views:
        for source in view.sources:
            if source.topic != declared or not _matches(source, payload):
                continue
            key = tuple(path_value(payload, p) for p in source.keys)
            if any(k is None or k == "" for k in key):
                continue
            fields = {name: _field(payload, spec) for name, spec in source.fields.items()}
            rows.append(Row(view.name, tuple(map(str, key)), event_id, ts, source.kind, fields))
    return rows


def _value(row: Row, name: str | None) -> Any:
    if name == OCCURRED_AT:
        return row.ts / 1_000_000
    return row.fields.get(name) if name else None


def cast(value: Any, dtype: str) -> Any:
    if value is None:
        return None
    return int(value) if dtype == "int64" else float(value)


def _window_us(feature: Aggregate) -> int:
    assert feature.window is not None
    return int(feature.window.total_seconds() * 1_000_000)


def over(feature: Aggregate, chosen: Sequence[Row], at: int) -> Any:
    """Return ``feature`` at instant ``at`` (µs) over ``chosen``: one entity's rows of the
    feature's kinds in its window (``at - window < ts <= at``)."""
    agg = feature.agg
    if agg == "count":
        return len(chosen)
    if agg == "last":
        if not chosen:
            return None
        latest = max(chosen, key=lambda r: (r.ts, r.event_id))
        return cast(_value(latest, feature.field), feature.dtype)
    if agg == "age_days":
        return (at - min(r.ts for r in chosen)) / US_PER_DAY if chosen else None
    if agg == "since_previous":
        earlier = [r.ts for r in chosen if r.ts < at]
        return (at - max(earlier)) / 1_000_000 if earlier else None
    values = [v for v in (_value(r, feature.field) for r in chosen) if v is not None]
    if agg == "sum":
        return cast(sum(values), feature.dtype)
    if agg == "count_distinct":
        return len(set(values))
    if not values:
        return None
    if agg == "avg":
        return sum(values) / len(values)
    if agg == "std":
        return spread(len(values), sum(values), sum(v * v for v in values))
    if agg == "median":
        return float(statistics.median(values))
    raise ValueError(f"unknown aggregation {agg!r}")


def spread(n: int, total: float, squares: float) -> float | None:
    """Return the population standard deviation of ``n`` values of sum ``total`` and sum of
    squares ``squares`` (None for no value): the one formula of every engine, in floats in this
    order (``features.offline.sql.STD_SQL``), so that exact integer sums give equal results."""
    if not n:
        return None
    mean = float(total) / n
    return math.sqrt(max(float(squares) / n - mean * mean, 0.0))


def ratio(feature: Ratio, values: Mapping[str, Any]) -> float | None:
    numerator, denominator = values.get(feature.numerator), values.get(feature.denominator)
    if numerator is None or not denominator:
        return None
    return numerator / denominator


@dataclass(frozen=True, slots=True)
class _Plan:
    """A view's features grouped by the rows they read: each (kinds, window µs) selection is
    made once for every aggregate over it (a card's 24 h payments feed its count, sum and two
    distinct counts)."""

    view: View
    selections: tuple[tuple[frozenset[str], int | None, tuple[Aggregate, ...]], ...]
    ratios: tuple[Ratio, ...]
    names: tuple[str, ...]
    ttl_us: int | None


_PLANS: dict[str, _Plan] = {}


def _plan(view: View) -> _Plan:
    plan = _PLANS.get(view.name)
    if plan is not None and plan.view is view:
        return plan
    groups: dict[tuple[frozenset[str], int | None], list[Aggregate]] = {}
    for f in view.features:
        if isinstance(f, Aggregate):
            window = _window_us(f) if f.window else None
            groups.setdefault((frozenset(f.kinds), window), []).append(f)
    plan = _Plan(
        view=view,
        selections=tuple((kinds, window, tuple(fs)) for (kinds, window), fs in groups.items()),
        ratios=tuple(f for f in view.features if isinstance(f, Ratio)),
        names=tuple(f.name for f in view.features),
        ttl_us=int(view.ttl.total_seconds() * 1_000_000) if view.ttl is not None else None,
    )
    _PLANS[view.name] = plan
    return plan


def evaluate(view: View, rows: Sequence[Row], at: int) -> dict[str, Any]:
    """Return every feature of ``view`` at instant ``at`` (µs) over one entity's ``rows``
    (each aggregate over its kinds' rows in its window, then the ratios; in the view's
    order)."""
    plan = _plan(view)
    found: dict[str, Any] = {}
    for kinds, window, features in plan.selections:
        if window is None:
            chosen = [r for r in rows if r.kind in kinds and r.ts <= at]
        else:
            low = at - window
            chosen = [r for r in rows if r.kind in kinds and low < r.ts <= at]
        for f in features:
            found[f.name] = over(f, chosen, at)
    return completed(view, found)


def selections(view: View) -> tuple[tuple[frozenset[str], int | None, tuple[Aggregate, ...]], ...]:
    """``view``'s aggregates grouped by the rows they read: (kinds, window µs or None for
    unbounded, the aggregates), in the order ``evaluate`` computes them."""
    return _plan(view).selections


def completed(view: View, found: dict[str, Any]) -> dict[str, Any]:
    """Return ``view``'s values from ``found``, its aggregates' values: the ratios added, in the
    view's order."""
    plan = _plan(view)
    for f in plan.ratios:
        found[f.name] = ratio(f, found)
    return {name: found[name] for name in plan.names}


def value_at(
    view: View, rows: Sequence[Row], at: int, *, floor: int | None = None
) -> tuple[dict[str, Any] | None, int | None]:
    """Return ``view``'s values at instant ``at`` (µs) over one entity's ``rows`` and the event
    time of the entity's latest event at or before ``at``: the one semantics of a served and of
    a trained feature (``features.definitions``). Every event at or before ``at`` counts (one
    at ``at`` too), windows slide (``at - window < ts <= at``, whenever the entity last had an
    event), and the view is null (``None``) when the entity had no event at or before ``at``
    or its latest is older than the view's ttl (``ts < at - ttl``: the point-in-time join's
    rule, kept at the bound)."""
    kept = [r for r in rows if r.ts <= at]
    served, latest = served_latest(view, max((r.ts for r in kept), default=None), at, floor=floor)
    return (evaluate(view, kept, at) if served else None), latest


def served_latest(
    view: View, latest: int | None, at: int, *, floor: int | None
) -> tuple[bool, int | None]:
    """``value_at``'s rule on whether ``view`` is served at ``at``, given the event time of the
    entity's latest row at or before it (None: no such row) and the state's floor: whether it
    is, and the latest event time to report. A store that evaluates the aggregates itself
    (``features.state``) decides by this same function."""
    if latest is None and floor is not None and floor <= at:
        latest = floor
    if latest is None:
        return False, None
    ttl = _plan(view).ttl_us
    return not (ttl is not None and latest < at - ttl), latest
