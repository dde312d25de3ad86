"""The stream processor's window state: per (view, entity) the rows its windows still need.

Two backends keep the same data under one interface and give the same reads for the same adds
(``tests/features/test_state.py``): ``RedisState`` (a sorted set per entity scored by event time)
and ``SqliteState`` (one file, the embedded default). Per (view, entity key) they hold:

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
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from features.definitions import STREAM_VIEWS, View
from features.windows import Row

# (view name, entity key): what the state keeps rows for.
EntityRef = tuple[str, tuple[str, ...]]
# (consumer group, topic, partition) -> {offset: max event time (µs) before that offset, or None}
Marks = Mapping[tuple[str, str, int], Mapping[int, int | None]]

_SEP = "\x1f"
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
class Added:
    """The result of ``add_and_read``: the add's clock (µs) and every touched entity's state."""

    clock: int
    entities: dict[EntityRef, EntityRows]


@lru_cache(maxsize=1 << 16)
def _key_text(key: tuple[str, ...]) -> str:
    return json.dumps(list(key), separators=(",", ":"))


def _fields_text(fields: Mapping[str, Any]) -> str:
    return json.dumps(dict(fields), sort_keys=True, separators=(",", ":"))


@lru_cache(maxsize=1 << 17)
def _fields(text: str) -> Mapping[str, Any]:
    # Cached: an active entity's rows are read back batch after batch. Rows never change their
    # fields, so every reader shares the parsed value read-only.
    return MappingProxyType(json.loads(text))


def _sorted(rows: Iterable[Row]) -> tuple[Row, ...]:
    unique = {(r.event_id, r.kind): r for r in rows}
    return tuple(sorted(unique.values(), key=lambda r: (r.ts, r.event_id, r.kind)))


def _by_entity(rows: Iterable[Row]) -> dict[EntityRef, list[Row]]:
    grouped: dict[EntityRef, list[Row]] = {}
    for row in rows:
        grouped.setdefault((row.view, row.key), []).append(row)
    return grouped


class WindowState(abc.ABC):
    """The window state of the stream views (``views``), pruned as ``lateness_us`` allows."""

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
_CLOCK_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
if now <= last then now = last + 1 end
redis.call('SET', KEYS[1], string.format('%d', now))
return now
"""

# One entity's add, prune and read. KEYS: rows, meta, then one "pruned latest" set per last
# kind. ARGV: version, cutoff ('' for none), the number of last kinds, the kinds, then
# (score, member) pairs. The pruned rows come newest first (equal scores: greatest member
# first), so the first of a kind is that kind's latest.
_ADD_SCRIPT = """
local rows, meta = KEYS[1], KEYS[2]
local version, cutoff, n = ARGV[1], ARGV[2], tonumber(ARGV[3])
for i = 4 + n, #ARGV, 2 do
  redis.call('ZADD', rows, ARGV[i], ARGV[i + 1])
end
if cutoff ~= '' then
  local pruned = redis.call('ZREVRANGEBYSCORE', rows, cutoff, '-inf', 'WITHSCORES')
  if #pruned > 0 then
    local top = tonumber(pruned[2])
    local floor = tonumber(redis.call('HGET', meta, 'floor') or '')
    if floor == nil or top > floor then
      redis.call('HSET', meta, 'floor', string.format('%d', top))
    end
    for j = 1, n do
      local kind = ARGV[3 + j]
      for p = 1, #pruned, 2 do
        local m = pruned[p]
        local a = string.find(m, '\\31', 1, true)
        local b = string.find(m, '\\31', a + 1, true)
        if string.sub(m, a + 1, b - 1) == kind then
          redis.call('ZADD', KEYS[2 + j], pruned[p + 1], m)
          redis.call('ZREMRANGEBYRANK', KEYS[2 + j], 0, -2)
          break
        end
      end
    end
    redis.call('ZREMRANGEBYSCORE', rows, '-inf', cutoff)
  end
end
redis.call('HSET', meta, 'version', version)
local out = {redis.call('ZRANGE', rows, 0, -1, 'WITHSCORES')}
for j = 1, n do
  out[#out + 1] = redis.call('ZRANGE', KEYS[2 + j], 0, -1, 'WITHSCORES')
end
out[#out + 1] = redis.call('HGET', meta, 'floor')
out[#out + 1] = version
return out
"""

# The positions (1-based) of the entities whose meta hash (KEYS[i]) has a version other than
# ARGV[i].
_CHANGED_SCRIPT = """
local out = {}
for i = 1, #KEYS do
  if redis.call('HGET', KEYS[i], 'version') ~= ARGV[i] then out[#out + 1] = i end
end
return out
"""


class RedisState(WindowState):
    """Window state in Redis, every key under ``prefix``; per (view, entity key ``<key>``, the
    key as a JSON list):

    - ``rows:<view>:<key>``: sorted set of the window rows, scored by ts, member
      ``<event_id>\\x1f<kind>\\x1f<fields JSON>`` (equal scores sort by member: by event id);
    - ``pruned:<view>:<kind>:<key>``: the latest pruned row of a last kind (one member);
    - ``meta:<view>:<key>``: hash of ``floor`` and ``version``;

    and ``clock``, ``marks:<group>:<topic>:<partition>`` (``<offset>:<max ts>`` scored by
    offset; "" for None). Entity keys never expire: an idle entity keeps its few rows.
    """

    def __init__(
        self,
        client: Any,
        *,
        prefix: str,
        views: Sequence[View] = STREAM_VIEWS,
        lateness_us: int,
    ):
        super().__init__(views=views, lateness_us=lateness_us)
        self.client = client
        self.prefix = prefix
        self._add = client.register_script(_ADD_SCRIPT)
        self._clock = client.register_script(_CLOCK_SCRIPT)
        self._changed = client.register_script(_CHANGED_SCRIPT)

    @classmethod
    def from_url(cls, url: str, *, prefix: str, **kw: Any) -> RedisState:
        import redis

        return cls(redis.Redis.from_url(url, socket_timeout=30), prefix=prefix, **kw)

    def _keys(self, view: str, key: tuple[str, ...]) -> list[str]:
        text = _key_text(key)
        return [
            f"{self.prefix}rows:{view}:{text}",
            f"{self.prefix}meta:{view}:{text}",
            *(f"{self.prefix}pruned:{view}:{k}:{text}" for k in self.retention[view].last_kinds),
        ]

    def _parse(self, ref: EntityRef, reply: Sequence[Any]) -> EntityRows:
        view, key = ref
        *sets, floor, version = reply
        rows = []
        for flat in sets:
            for i in range(0, len(flat), 2):
                event_id, kind, fields = flat[i].decode().split(_SEP, 2)
                ts = int(float(flat[i + 1]))
                rows.append(Row(view, key, event_id, ts, kind, _fields(fields)))
        return EntityRows(
            rows=_sorted(rows),
            floor=None if floor is None else int(floor),
            version=None if version is None else _text(version),
        )

    def add_and_read(
        self,
        *,
        rows: Sequence[Row],
        version: str,
        marks: Marks | None = None,
        low_watermark: int | None = None,
    ) -> Added:
        grouped = _by_entity(rows)
        pipe = self.client.pipeline(transaction=True)
        self._clock(keys=[f"{self.prefix}clock"], client=pipe)
        for (group, topic, partition), entries in (marks or {}).items():
            if entries:
                name = f"{self.prefix}marks:{group}:{topic}:{partition}"
                pipe.zadd(name, {f"{o}:{'' if ts is None else ts}": o for o, ts in entries.items()})
                pipe.zremrangebyrank(name, 0, -MARKS_KEPT - 1)
        for (view, key), entity_rows in grouped.items():
            kinds = self.retention[view].last_kinds
            cutoff = self.cutoff(view, entity_rows, low_watermark=low_watermark)
            args: list[Any] = [version, "" if cutoff is None else cutoff, len(kinds), *kinds]
            for r in entity_rows:
                args += [r.ts, _SEP.join((r.event_id, r.kind, _fields_text(r.fields)))]
            self._add(keys=self._keys(view, key), args=args, client=pipe)
        results = pipe.execute()
        # The entity replies are the last ones, in the order the entities were queued.
        replies = results[len(results) - len(grouped) :] if grouped else []
        entities = {
            ref: self._parse(ref, reply) for ref, reply in zip(grouped, replies, strict=True)
        }
        return Added(clock=int(results[0]), entities=entities)

    def read(self, *, entities: Iterable[EntityRef]) -> dict[EntityRef, EntityRows]:
        refs = list(dict.fromkeys(entities))
        if not refs:
            return {}
        pipe = self.client.pipeline(transaction=True)
        sizes = []
        for view, key in refs:
            rows_key, meta_key, *pruned_keys = self._keys(view, key)
            for name in (rows_key, *pruned_keys):
                pipe.zrange(name, 0, -1, withscores=True, score_cast_func=bytes)
            pipe.hmget(meta_key, ["floor", "version"])
            sizes.append(2 + len(pruned_keys))
        results = pipe.execute()
        out: dict[EntityRef, EntityRows] = {}
        position = 0
        for ref, size in zip(refs, sizes, strict=True):
            chunk = results[position : position + size]
            position += size
            sets = [[item for pair in flat for item in pair] for flat in chunk[:-1]]
            out[ref] = self._parse(ref, [*sets, *chunk[-1]])
        return out

    def versions(self, *, entities: Iterable[EntityRef]) -> dict[EntityRef, str | None]:
        refs = list(dict.fromkeys(entities))
        pipe = self.client.pipeline(transaction=False)
        for view, key in refs:
            pipe.hget(self._keys(view, key)[1], "version")
        return {
            ref: None if v is None else _text(v)
            for ref, v in zip(refs, pipe.execute(), strict=True)
        }

    def changed(self, *, expected: Mapping[EntityRef, str]) -> list[EntityRef]:
        refs = list(expected)
        if not refs:
            return []
        positions = self._changed(
            keys=[self._keys(view, key)[1] for view, key in refs],
            args=[expected[ref] for ref in refs],
        )
        return [refs[int(i) - 1] for i in positions]

    def marks(self, *, group: str, topic: str, partition: int) -> dict[int, int | None]:
        entries = self.client.zrange(f"{self.prefix}marks:{group}:{topic}:{partition}", 0, -1)
        pairs = (entry.decode().split(":") for entry in entries)
        return {int(o): int(ts) if ts else None for o, ts in pairs}

    def close(self) -> None:
        self.client.close()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


# SQLite

_SCHEMA = """
CREATE TABLE IF NOT EXISTS window_rows (
    view TEXT NOT NULL,
    key TEXT NOT NULL,
    event_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    ts INTEGER NOT NULL,
    fields TEXT NOT NULL,
    PRIMARY KEY (view, key, event_id, kind)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS window_rows_ts ON window_rows (view, key, ts);
CREATE TABLE IF NOT EXISTS pruned_rows (
    view TEXT NOT NULL,
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    event_id TEXT NOT NULL,
    ts INTEGER NOT NULL,
    fields TEXT NOT NULL,
    PRIMARY KEY (view, key, kind)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entities (
    view TEXT NOT NULL,
    key TEXT NOT NULL,
    floor INTEGER,
    version TEXT NOT NULL,
    PRIMARY KEY (view, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS marks (
    grp TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    max_ts INTEGER,
    PRIMARY KEY (grp, topic, partition, offset)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS clock (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    us INTEGER NOT NULL
);
"""


class SqliteState(WindowState):
    """Window state in one SQLite file (WAL), safe across processes: the data of ``RedisState``
    in tables ``window_rows``, ``pruned_rows``, ``entities``, ``marks`` and ``clock``."""

    def __init__(self, path: str | Path, *, views: Sequence[View] = STREAM_VIEWS, lateness_us: int):
        super().__init__(views=views, lateness_us=lateness_us)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One caller at a time, from any thread (each transaction is a single call).
        self.conn = sqlite3.connect(
            self.path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        self.conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL survives a process crash in WAL mode; a power loss may drop the last commits,
        # which the stream then replays from its committed offsets.
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA busy_timeout=30000")
        self.conn.executescript(_SCHEMA)

    def add_and_read(
        self,
        *,
        rows: Sequence[Row],
        version: str,
        marks: Marks | None = None,
        low_watermark: int | None = None,
    ) -> Added:
        grouped = _by_entity(rows)
        with _transaction(self.conn, immediate=True):
            clock = self._tick()
            for (group, topic, partition), entries in (marks or {}).items():
                self.conn.executemany(
                    "INSERT OR REPLACE INTO marks (grp, topic, partition, offset, max_ts) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [(group, topic, partition, o, ts) for o, ts in entries.items()],
                )
                self.conn.execute(
                    "DELETE FROM marks WHERE grp = ? AND topic = ? AND partition = ? AND offset "
                    "NOT IN (SELECT offset FROM marks WHERE grp = ? AND topic = ? AND "
                    "partition = ? ORDER BY offset DESC LIMIT ?)",
                    (group, topic, partition, group, topic, partition, MARKS_KEPT),
                )
            self.conn.executemany(
                "INSERT OR IGNORE INTO window_rows (view, key, event_id, kind, ts, fields) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (r.view, _key_text(r.key), r.event_id, r.kind, r.ts, _fields_text(r.fields))
                    for r in rows
                ],
            )
            for (view, key), entity_rows in grouped.items():
                cutoff = self.cutoff(view, entity_rows, low_watermark=low_watermark)
                self._prune(view, _key_text(key), cutoff, version)
            entities = {ref: self._read(ref) for ref in grouped}
        return Added(clock=clock, entities=entities)

    def _prune(self, view: str, key: str, cutoff: int | None, version: str) -> None:
        floor = None
        if cutoff is not None:
            pruned = self.conn.execute(
                "SELECT event_id, kind, ts, fields FROM window_rows "
                "WHERE view = ? AND key = ? AND ts <= ?",
                (view, key, cutoff),
            ).fetchall()
            if pruned:
                floor = max(ts for _, _, ts, _ in pruned)
                for kind in self.retention[view].last_kinds:
                    ofkind = [p for p in pruned if p[1] == kind]
                    if not ofkind:
                        continue
                    event_id, _, ts, fields = max(ofkind, key=lambda p: (p[2], p[0]))
                    self.conn.execute(
                        "INSERT INTO pruned_rows (view, key, kind, event_id, ts, fields) "
                        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (view, key, kind) DO UPDATE SET "
                        "event_id = excluded.event_id, ts = excluded.ts, "
                        "fields = excluded.fields WHERE (excluded.ts, excluded.event_id) > "
                        "(pruned_rows.ts, pruned_rows.event_id)",
                        (view, key, kind, event_id, ts, fields),
                    )
                self.conn.execute(
                    "DELETE FROM window_rows WHERE view = ? AND key = ? AND ts <= ?",
                    (view, key, cutoff),
                )
        self.conn.execute(
            "INSERT INTO entities (view, key, floor, version) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (view, key) DO UPDATE SET version = excluded.version, "
            "floor = MAX(COALESCE(entities.floor, excluded.floor), "
            "COALESCE(excluded.floor, entities.floor))",
            (view, key, floor, version),
        )

    def _tick(self) -> int:
        row = self.conn.execute("SELECT us FROM clock WHERE id = 0").fetchone()
        now = time.time_ns() // 1000
        if row is not None and now <= row[0]:
            now = row[0] + 1
        self.conn.execute(
            "INSERT INTO clock (id, us) VALUES (0, ?) ON CONFLICT (id) DO UPDATE SET us = ?",
            (now, now),
        )
        return now

    def _read(self, ref: EntityRef) -> EntityRows:
        view, key = ref
        key_text = _key_text(key)
        found = self.conn.execute(
            "SELECT event_id, kind, ts, fields FROM window_rows WHERE view = ? AND key = ? "
            "UNION ALL SELECT event_id, kind, ts, fields FROM pruned_rows "
            "WHERE view = ? AND key = ?",
            (view, key_text, view, key_text),
        ).fetchall()
        meta = self.conn.execute(
            "SELECT floor, version FROM entities WHERE view = ? AND key = ?", (view, key_text)
        ).fetchone()
        return EntityRows(
            rows=_sorted(
                Row(view, key, event_id, ts, kind, _fields(fields))
                for event_id, kind, ts, fields in found
            ),
            floor=meta[0] if meta else None,
            version=meta[1] if meta else None,
        )

    def read(self, *, entities: Iterable[EntityRef]) -> dict[EntityRef, EntityRows]:
        with _transaction(self.conn, immediate=False):
            return {ref: self._read(ref) for ref in dict.fromkeys(entities)}

    def versions(self, *, entities: Iterable[EntityRef]) -> dict[EntityRef, str | None]:
        out = {}
        with _transaction(self.conn, immediate=False):
            for view, key in dict.fromkeys(entities):
                row = self.conn.execute(
                    "SELECT version FROM entities WHERE view = ? AND key = ?",
                    (view, _key_text(key)),
                ).fetchone()
                out[(view, key)] = row[0] if row else None
        return out

    def changed(self, *, expected: Mapping[EntityRef, str]) -> list[EntityRef]:
        current = self.versions(entities=expected)
        return [ref for ref, version in expected.items() if current[ref] != version]

    def marks(self, *, group: str, topic: str, partition: int) -> dict[int, int | None]:
        return dict(
            self.conn.execute(
                "SELECT offset, max_ts FROM marks WHERE grp = ? AND topic = ? AND partition = ?",
                (group, topic, partition),
            ).fetchall()
        )

    def close(self) -> None:
        self.conn.close()


@contextmanager
def _transaction(conn: sqlite3.Connection, *, immediate: bool) -> Iterator[None]:
    """Run the block in one transaction (``BEGIN IMMEDIATE``: take the write lock first)."""
    conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
