"""The window state in one SQLite file, the embedded default (``features.state.base`` says what
is kept): an add and its read-back in one ``BEGIN IMMEDIATE`` transaction."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType

from features.definitions import STREAM_VIEWS, View
from features.state.base import (
    MARKS_KEPT,
    Added,
    Applied,
    EntityRef,
    EntityRows,
    Marks,
    ServeRead,
    WindowState,
    evaluated_at,
    fields_parse,
    fields_text,
    key_text,
    rows_by_entity,
    rows_sorted,
)
from features.windows import Row

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
        grouped = rows_by_entity(rows)
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
                    (r.view, key_text(r.key), r.event_id, r.kind, r.ts, fields_text(r.fields))
                    for r in rows
                ],
            )
            for (view, key), entity_rows in grouped.items():
                cutoff = self.cutoff(view, entity_rows, low_watermark=low_watermark)
                self._prune(view, key_text(key), cutoff, version)
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
        key_str = key_text(key)
        found = self.conn.execute(
            "SELECT event_id, kind, ts, fields FROM window_rows WHERE view = ? AND key = ? "
            "UNION ALL SELECT event_id, kind, ts, fields FROM pruned_rows "
            "WHERE view = ? AND key = ?",
            (view, key_str, view, key_str),
        ).fetchall()
        meta = self.conn.execute(
            "SELECT floor, version FROM entities WHERE view = ? AND key = ?", (view, key_str)
        ).fetchone()
        return EntityRows(
            rows=rows_sorted(
                Row(view, key, event_id, ts, kind, fields_parse(fields))
                for event_id, kind, ts, fields in found
            ),
            floor=meta[0] if meta else None,
            version=meta[1] if meta else None,
        )

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
        refs = list(dict.fromkeys(entities))
        with _transaction(self.conn, immediate=bool(rows)):
            self.conn.executemany(
                "INSERT OR IGNORE INTO window_rows (view, key, event_id, kind, ts, fields) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (r.view, key_text(r.key), r.event_id, r.kind, r.ts, fields_text(r.fields))
                    for r in rows
                ],
            )
            read = {}
            for ref in refs:
                if ref in known:
                    meta = self.conn.execute(
                        "SELECT version FROM entities WHERE view = ? AND key = ?",
                        (ref[0], key_text(ref[1])),
                    ).fetchone()
                    if (meta[0] if meta else None) == known[ref]:
                        continue
                read[ref] = self._read(ref)
            applied = {}
            for topic, partition in dict.fromkeys(partitions):
                found = self.conn.execute(
                    "SELECT offset, max_ts FROM marks WHERE grp = ? AND topic = ? AND "
                    "partition = ? ORDER BY offset DESC LIMIT 1",
                    (group, topic, partition),
                ).fetchone()
                if found is not None:
                    applied[(topic, partition)] = Applied(found[0], found[1])
            probed = {ref: self._read(ref) for ref in probes}
        evaluated = {
            (ref, at): evaluated_at(self.views[ref[0]], probed[ref], at)
            for ref, instants in probes.items()
            for at in instants
        }
        return ServeRead(entities=read, applied=applied, evaluated=evaluated)

    def read(self, *, entities: Iterable[EntityRef]) -> dict[EntityRef, EntityRows]:
        with _transaction(self.conn, immediate=False):
            return {ref: self._read(ref) for ref in dict.fromkeys(entities)}

    def versions(self, *, entities: Iterable[EntityRef]) -> dict[EntityRef, str | None]:
        out = {}
        with _transaction(self.conn, immediate=False):
            for view, key in dict.fromkeys(entities):
                row = self.conn.execute(
                    "SELECT version FROM entities WHERE view = ? AND key = ?",
                    (view, key_text(key)),
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
