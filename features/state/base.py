"""The stream processor's window state: per (view, entity) the rows its windows still need.

Two backends keep the same data under one interface (``WindowState``, here) and give the same
reads for the same adds (``tests/features/test_state.py``): ``RedisState``
(``features.state.redis``: a sorted set per entity scored by event time) and ``SqliteState``
(``features.state.sqlite``: one file, the embedded default). Per (view, entity key) they hold:

- the *window rows*: every row added, less the pruned ones. An add prunes the entity's rows at
  or before ``cutoff = min(latest - (longest window + allowed lateness), earliest - longest
  window)``, latest and earliest among the rows it adds; rows of a view with an unbounded
  aggregate other than ``last`` are never pruned;
- for each kind an unbounded ``last`` feature reads (``card_added``, ``signup``), the latest
  (greatest ``(ts, event_id)``) *pruned* row of that kind: with the window rows, it answers
  ``last`` at any instant after the floor;
- the *floor*: the latest event time of any pruned row (None: nothing pruned yet). Every row ever
  added with ``ts > floor`` is present, so an evaluation at instant ``t`` sees every row it needs
  when ``t - longest window >= floor``;
- the *version*: the token of the last add that touched the entity, so a processor can tell
  whether another one wrote after it read.

Besides rows, the state keeps a strictly increasing clock (µs since the epoch, the store's own
time, bumped by every add): the created timestamp of the feature rows an add leads to, so rows
computed from a later read of the state carry a later created timestamp, across processes. And
the lateness marks of each (group, topic, partition): ``{offset: max event time}`` entries (the
``MARKS_KEPT`` of greatest offset) the processor uses to replay its lateness decisions
identically after a crash.

Idempotency: a row is identified by (view, key, event_id, kind); adding it again changes
nothing (Redis: the sorted-set member embeds the event id, kind and fields; SQLite: the primary
key). ``add_and_read`` adds a batch and reads back every touched entity in one transaction (Redis
MULTI/EXEC, SQLite ``BEGIN IMMEDIATE``) and one round trip: two processors adding rows of one
entity never both miss each other's rows.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType
from typing import Any, NamedTuple

import orjson

from features.definitions import STREAM_VIEWS, View
from features.windows import Row, value_at

# (view name, entity key): what the state keeps rows for.
EntityRef = tuple[str, tuple[str, ...]]
# (consumer group, topic, partition) -> {offset: max event time (µs) before that offset, or None}
Marks = Mapping[tuple[str, str, int], Mapping[int, int | None]]

SEP = "\x1f"
# Lateness entries kept per partition: a group's committed offset is one of the last ones a
# processor wrote, even when two processors read a partition during a rebalance and when a
# processor commits only every few batches (``features.processor.OFFLINE_MAX_BATCHES``: each
# batch adds about one entry a partition).
MARKS_KEPT = 64


@dataclass(frozen=True)
class Retention:
    """How a view's rows are kept: ``keep_us`` behind the newest row added (None: for ever);
    ``window_us``, its longest window; the kinds whose latest pruned row is kept (those its
    unbounded ``last`` features read)."""

    window_us: int | None
    keep_us: int | None
    last_kinds: tuple[str, ...]


def retention(view: View, *, lateness_us: int) -> Retention:
    """Return ``view``'s retention: rows are kept for its longest window plus ``lateness_us``."""
    windows = [a.window for a in view.aggregates if a.window is not None]
    unbounded = [a for a in view.aggregates if a.window is None]
    last_kinds = sorted({k for a in unbounded if a.agg == "last" for k in a.kinds})
    window_us = int(max(windows).total_seconds() * 1_000_000) if windows else 0
    if any(a.agg != "last" for a in unbounded):
        return Retention(window_us=None, keep_us=None, last_kinds=tuple(last_kinds))
    return Retention(
        window_us=window_us, keep_us=window_us + lateness_us, last_kinds=tuple(last_kinds)
    )


@dataclass(frozen=True)
class EntityRows:
    """What the state holds for one entity: rows sorted by (ts, event_id, kind), the floor (None
    when nothing was ever pruned) and the version token of the last add."""

    rows: tuple[Row, ...]
    floor: int | None
    version: str | None


@dataclass(frozen=True)
class Applied:
    """How far the stream processor's adds went on one partition: the state holds the rows of
    every record before ``offset`` (the greatest of its lateness marks: they are added in the
    transaction of the rows), the latest event time among them ``max_ts``."""

    offset: int
    max_ts: int | None


class Evaluated(NamedTuple):
    """A view of one entity evaluated at one instant, as ``features.windows.value_at`` gives
    it: the values (None: not served), the event time of the entity's latest event at or
    before the instant (None: none), and the entity's floor (None: nothing pruned). A named
    tuple: one is made per payment."""

    values: dict[str, Any] | None
    latest: int | None
    floor: int | None


@dataclass(frozen=True)
class ServeRead:
    """The result of ``serve_read``: the entities read (one asked for with the version it has
    cached is absent when that is still the version), per partition asked for the processor's
    ``Applied`` (absent: it never added a record of the partition), and per (entity, instant)
    probed the view evaluated there."""

    entities: dict[EntityRef, EntityRows]
    applied: dict[tuple[str, int], Applied]
    evaluated: dict[tuple[EntityRef, int], Evaluated] = field(default_factory=dict)


def evaluated_at(view: View, state: EntityRows, at: int) -> Evaluated:
    """Evaluate ``view`` over one entity's ``state`` at instant ``at``, in Python: what a
    backend that cannot evaluate in the store answers for ``serve_read``'s probes, and a server
    for the entities it read as rows."""
    values, latest = value_at(view, state.rows, at, floor=state.floor)
    return Evaluated(values, latest, state.floor)


@dataclass(frozen=True)
class Added:
    """The result of ``add_and_read``: the add's clock (µs) and every touched entity's state."""

    clock: int
    entities: dict[EntityRef, EntityRows]


@lru_cache(maxsize=1 << 16)
def key_text(key: tuple[str, ...]) -> str:
    # What ``json.dumps(list(key), separators=(",", ":"))`` writes, without the encoder for the
    # common key: printable ASCII with no quote or backslash is written as it is.
    if key and all(k.isascii() and k.isprintable() and '"' not in k and "\\" not in k for k in key):
        return '["' + '","'.join(key) + '"]'
    return json.dumps(list(key), separators=(",", ":"))


def fields_text(fields: Mapping[str, Any]) -> str:
    # The text is part of a row's identity (a Redis member): it must stay what the JSON
    # encoder writes, which orjson writes too, several times faster, for printable ASCII
    # strings, 64-bit integers, booleans and nulls. Floats (orjson writes 1e16 for 1e+16) and
    # other strings take the encoder.
    for value in fields.values():
        kind = type(value)
        if kind is str:
            if not (value.isascii() and value.isprintable()):
                break
        elif kind is not int and kind is not bool and value is not None:
            break
    else:
        try:
            return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS).decode()
        except (orjson.JSONEncodeError, TypeError):
            pass
    return json.dumps(dict(fields), sort_keys=True, separators=(",", ":"))


@lru_cache(maxsize=1 << 17)
def fields_parse(text: str) -> Mapping[str, Any]:
    # Cached: an active entity's rows are read back batch after batch. Rows never change their
    # fields, so every reader shares the parsed value read-only.
    return MappingProxyType(json.loads(text))


def rows_sorted(rows: Iterable[Row]) -> tuple[Row, ...]:
    unique = {(r.event_id, r.kind): r for r in rows}
    return tuple(sorted(unique.values(), key=lambda r: (r.ts, r.event_id, r.kind)))


def rows_by_entity(rows: Iterable[Row]) -> dict[EntityRef, list[Row]]:
    grouped: dict[EntityRef, list[Row]] = {}
    for row in rows:
        grouped.setdefault((row.view, row.key), []).append(row)
    return grouped


class WindowState(abc.ABC):
    """The window state of the stream views (``views``), pruned as ``lateness_us`` allows."""

    # Whether one instance takes calls from several threads (a server reads it on a thread of
    # its own while it does other work: ``StreamServing.begin``).
    concurrent = False

    def __init__(self, *, views: Sequence[View] = STREAM_VIEWS, lateness_us: int):
        self.views = {v.name: v for v in views}
        self.lateness_us = lateness_us
        self.retention = {v.name: retention(v, lateness_us=lateness_us) for v in views}

    def cutoff(
        self, view: str, rows: Sequence[Row], *, low_watermark: int | None = None
    ) -> int | None:
        """Return the prune cutoff of an add of ``rows`` (one entity's): rows at or before it
        go; None when the view keeps every row.

        It keeps the longest window plus the lateness behind the latest row added (later
        events of its partition are no earlier), the longest window behind the earliest one
        (the values at its time are computed from this add's read) and behind
        ``low_watermark`` (the values at the time of later rows from other partitions).
        """
        policy = self.retention[view]
        if policy.keep_us is None or policy.window_us is None:
            return None
        cutoff = min(
            max(r.ts for r in rows) - policy.keep_us, min(r.ts for r in rows) - policy.window_us
        )
        if low_watermark is not None:
            cutoff = min(cutoff, low_watermark - policy.window_us)
        return cutoff

    @abc.abstractmethod
    def add_and_read(
        self,
        *,
        rows: Sequence[Row],
        version: str,
        marks: Marks | None = None,
        low_watermark: int | None = None,
    ) -> Added:
        """Add ``rows``, prune their entities, stamp them with ``version``, add the lateness
        entries of ``marks`` (keeping ``MARKS_KEPT`` per partition), bump the clock, and read
        back every touched entity: all in one transaction, one round trip. ``low_watermark``
        (µs), when the caller knows one, bounds the prune too: the caller expects no later
        row before it, so only rows a window before it may go.

        Idempotent per row (view, key, event_id, kind).
        """

    @abc.abstractmethod
    def serve_read(
        self,
        *,
        rows: Sequence[Row],
        entities: Iterable[EntityRef],
        known: Mapping[EntityRef, str | None],
        group: str,
        partitions: Iterable[tuple[str, int]],
        probes: Mapping[EntityRef, Iterable[int]] = MappingProxyType({}),
    ) -> ServeRead:
        """A server's add and read, in one transaction and one round trip: add ``rows`` (the
        events it serves: idempotent per row, no prune, no version stamp, no clock tick, so a
        processor's adds and online writes go on as if it had not happened), read back
        ``entities`` (those in ``known`` only when their version is no longer the one given,
        None meaning never touched), group ``group``'s ``Applied`` on each of ``partitions``,
        and each entity of ``probes`` evaluated at each of its instants (µs), as
        ``features.windows.value_at`` over its rows would (``ServeRead.evaluated``; a backend
        may evaluate in the store and send back values rather than rows)."""

    @abc.abstractmethod
    def read(self, *, entities: Iterable[EntityRef]) -> dict[EntityRef, EntityRows]:
        """Return the state of ``entities`` (one consistent snapshot)."""

    @abc.abstractmethod
    def versions(self, *, entities: Iterable[EntityRef]) -> dict[EntityRef, str | None]:
        """Return the version token of each of ``entities`` (None: never touched)."""

    @abc.abstractmethod
    def changed(self, *, expected: Mapping[EntityRef, str]) -> list[EntityRef]:
        """Return the entities of ``expected`` whose version is no longer the one given, in
        one round trip."""

    @abc.abstractmethod
    def marks(self, *, group: str, topic: str, partition: int) -> dict[int, int | None]:
        """Return the lateness entries ``{offset: max event time}`` of a partition."""

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release connections."""


# Redis

# The store's clock: Redis's own time in µs, strictly after the previous value. Integers are
# formatted with %d: Lua 5.1 prints a 16-digit number in exponent notation.
