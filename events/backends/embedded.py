"""The embedded durable log: Kafka's model (topics, partitions by key, consumer groups,
committed offsets, at-least-once) on one SQLite file, safe across processes.

Each write is a SQLite transaction in WAL mode with ``synchronous=FULL``: an acknowledged
publish survives a crash of any process. Appends take SQLite's write lock (``BEGIN IMMEDIATE``),
so concurrent producers in several processes get gap-free, strictly increasing offsets.

Group membership is a heartbeat table: a member that has not polled for
``session_timeout_s`` is dropped and its partitions go to the others. Partitions are dealt
round-robin over the members sorted by id. As in Kafka, a partition may be read by two members
for the moment a rebalance takes to be seen by both; handlers are idempotent for that reason.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
import zlib
from collections.abc import Sequence
from pathlib import Path

from events.bus import Bus, BusError, Consumer, LogEnds, Message, Producer, Record, Sent

SCHEMA = """
CREATE TABLE IF NOT EXISTS topics (
    name TEXT PRIMARY KEY,
    partitions INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    key TEXT,
    value BLOB,
    headers TEXT NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    PRIMARY KEY (topic, partition, offset)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS committed (
    grp TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    PRIMARY KEY (grp, topic, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS members (
    grp TEXT NOT NULL,
    member TEXT NOT NULL,
    heartbeat_ms INTEGER NOT NULL,
    PRIMARY KEY (grp, member)
) WITHOUT ROWID;
"""

DEFAULT_PARTITIONS = 3


def partition_for(key: str | None, partitions: int, fallback: int) -> int:
    """Return the partition of ``key`` (CRC-32, stable across processes and runs)."""
    if key is None:
        return fallback % partitions
    return zlib.crc32(key.encode()) % partitions


def _now_ms() -> int:
    return int(time.time() * 1000)


def _connect(path: Path, *, shared: bool = False) -> sqlite3.Connection:
    """Open the log; ``shared``: for use from several threads (the caller serializes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=not shared)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class EmbeddedBus(Bus):
    name = "embedded"

    def __init__(self, path: str | Path, *, default_partitions: int = DEFAULT_PARTITIONS):
        self.path = Path(path)
        self.default_partitions = default_partitions
        conn = _connect(self.path)
        try:
            conn.executescript(SCHEMA)
        finally:
            conn.close()

    def producer(self, *, linger_ms: int | None = None) -> EmbeddedProducer:
        # ``linger_ms`` is for a client batching requests to a broker: a send here is a write.
        return EmbeddedProducer(self)

    def consumer(
        self, *, group: str, topics: Sequence[str], batch_wait_ms: int | None = None
    ) -> EmbeddedConsumer:
        # ``batch_wait_ms`` is for a broker's fetches: a poll here reads the file directly.
        return EmbeddedConsumer(self, group=group, topics=topics)

    def ensure_topics(self, topics: Sequence[str], *, partitions: int) -> None:
        conn = _connect(self.path)
        try:
            conn.executemany(
                "INSERT OR IGNORE INTO topics (name, partitions) VALUES (?, ?)",
                [(topic, partitions) for topic in topics],
            )
        finally:
            conn.close()

    def committed(self, group: str, topic: str) -> dict[int, int]:
        conn = _connect(self.path)
        try:
            rows = conn.execute(
                "SELECT partition, offset FROM committed WHERE grp = ? AND topic = ?",
                (group, topic),
            ).fetchall()
        finally:
            conn.close()
        return dict(rows)

    def end_offsets(self, topic: str) -> dict[int, int]:
        conn = _connect(self.path)
        try:
            partitions = _partitions(conn, topic)
            rows = dict(
                conn.execute(
                    "SELECT partition, MAX(offset) + 1 FROM records WHERE topic = ? "
                    "GROUP BY partition",
                    (topic,),
                ).fetchall()
            )
        finally:
            conn.close()
        return {p: rows.get(p, 0) for p in range(partitions or 0)}

    def log_ends(self, topics: Sequence[str]) -> EmbeddedLogEnds:
        return EmbeddedLogEnds(self, topics)


class EmbeddedLogEnds(LogEnds):
    """End offsets from the file: a seek of the primary key per partition (a ``GROUP BY``
    would scan every record of the topics)."""

    def __init__(self, bus: EmbeddedBus, topics: Sequence[str]):
        self.topics = tuple(topics)
        self.conn = _connect(bus.path, shared=True)
        self._lock = threading.Lock()

    def read(self, *, timeout_s: float) -> dict[tuple[str, int], int]:
        ends: dict[tuple[str, int], int] = {}
        with self._lock:
            self.conn.execute("BEGIN")
            try:
                for topic in self.topics:
                    for partition in range(_partitions(self.conn, topic) or 0):
                        (last,) = self.conn.execute(
                            "SELECT MAX(offset) FROM records WHERE topic = ? AND partition = ?",
                            (topic, partition),
                        ).fetchone()
                        ends[(topic, partition)] = 0 if last is None else last + 1
            finally:
                self.conn.execute("COMMIT")
        return ends

    def close(self) -> None:
        self.conn.close()


def _partitions(conn: sqlite3.Connection, topic: str) -> int | None:
    row = conn.execute("SELECT partitions FROM topics WHERE name = ?", (topic,)).fetchone()
    return row[0] if row else None


class EmbeddedProducer(Producer):
    def __init__(self, bus: EmbeddedBus):
        self.bus = bus
        # A producer may be shared by threads (the scorer's main and recording threads): one
        # send at a time.
        self.conn = _connect(bus.path, shared=True)
        self._lock = threading.Lock()
        self._round_robin = 0

    def send(self, records: Sequence[Record]) -> Sent:
        """Append ``records`` in one SQLite transaction: stored (or failed) on return."""
        if not records:
            return Sent(records, [])
        with self._lock:
            return self._send(records)

    def _send(self, records: Sequence[Record]) -> Sent:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                self._append(records)
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            error = BusError(f"embedded log {self.bus.path}: {exc}")
            return Sent(records, [error] * len(records))
        return Sent(records, [None] * len(records))

    def _append(self, records: Sequence[Record]) -> None:
        partitions: dict[str, int] = {}
        next_offset: dict[tuple[str, int], int] = {}
        now = _now_ms()
        rows = []
        for record in records:
            if record.topic not in partitions:
                count = _partitions(self.conn, record.topic)
                if count is None:  # auto-create, as Kafka does by default
                    count = self.bus.default_partitions
                    self.conn.execute(
                        "INSERT INTO topics (name, partitions) VALUES (?, ?)", (record.topic, count)
                    )
                partitions[record.topic] = count
            self._round_robin += 1
            partition = partition_for(record.key, partitions[record.topic], self._round_robin)
            slot = (record.topic, partition)
            if slot not in next_offset:
                (last,) = self.conn.execute(
                    "SELECT MAX(offset) FROM records WHERE topic = ? AND partition = ?", slot
                ).fetchone()
                next_offset[slot] = 0 if last is None else last + 1
            offset = next_offset[slot]
            next_offset[slot] = offset + 1
            headers = json.dumps([[k, v.decode("latin-1")] for k, v in record.headers])
            rows.append((record.topic, partition, offset, record.key, record.value, headers, now))
        self.conn.executemany(
            "INSERT INTO records (topic, partition, offset, key, value, headers, timestamp_ms) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )

    def close(self) -> None:
        with self._lock:
            self.conn.close()


class EmbeddedConsumer(Consumer):
    def __init__(
        self,
        bus: EmbeddedBus,
        *,
        group: str,
        topics: Sequence[str],
        session_timeout_s: float = 10.0,
        heartbeat_interval_s: float = 1.0,
        poll_interval_s: float = 0.02,
    ):
        self.bus = bus
        self.group = group
        self.topics = tuple(topics)
        self.member_id = uuid.uuid4().hex
        self.session_timeout_ms = int(session_timeout_s * 1000)
        self.heartbeat_interval_s = heartbeat_interval_s
        self.poll_interval_s = poll_interval_s
        self._next_heartbeat = 0.0  # time.monotonic() when the next heartbeat is due
        self.conn = _connect(bus.path)
        self._owned: set[tuple[str, int]] = set()
        self._position: dict[tuple[str, int], int] = {}

    def _heartbeat_and_assign(self) -> None:
        """Renew membership, drop expired members and recompute this member's partitions.

        It takes the log's write lock, so ``poll`` runs it once per heartbeat interval, not on
        every idle check."""
        self._next_heartbeat = time.monotonic() + self.heartbeat_interval_s
        now = _now_ms()
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.execute(
                "INSERT INTO members (grp, member, heartbeat_ms) VALUES (?, ?, ?) "
                "ON CONFLICT (grp, member) DO UPDATE SET heartbeat_ms = excluded.heartbeat_ms",
                (self.group, self.member_id, now),
            )
            self.conn.execute(
                "DELETE FROM members WHERE grp = ? AND heartbeat_ms < ?",
                (self.group, now - self.session_timeout_ms),
            )
            members = [
                m
                for (m,) in self.conn.execute(
                    "SELECT member FROM members WHERE grp = ? ORDER BY member", (self.group,)
                )
            ]
            slots = []
            for topic in sorted(self.topics):
                count = _partitions(self.conn, topic) or 0
                slots.extend((topic, p) for p in range(count))
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        mine = members.index(self.member_id)
        owned = {slot for i, slot in enumerate(slots) if i % len(members) == mine}
        if owned != self._owned:
            # Newly owned partitions resume from the group's committed offset.
            for slot in owned - self._owned:
                row = self.conn.execute(
                    "SELECT offset FROM committed WHERE grp = ? AND topic = ? AND partition = ?",
                    (self.group, *slot),
                ).fetchone()
                self._position[slot] = row[0] if row else 0
            for slot in self._owned - owned:
                self._position.pop(slot, None)
            self._owned = owned

    def assignment(self) -> set[tuple[str, int]]:
        self._heartbeat_and_assign()
        return set(self._owned)

    def poll(self, *, timeout: float = 1.0, max_records: int = 500) -> list[Message]:
        deadline = time.monotonic() + timeout
        while True:
            if time.monotonic() >= self._next_heartbeat:
                self._heartbeat_and_assign()
            messages = self._fetch(max_records)
            if messages or time.monotonic() >= deadline:
                return messages
            time.sleep(min(self.poll_interval_s, max(deadline - time.monotonic(), 0)))

    def _fetch(self, max_records: int) -> list[Message]:
        messages: list[Message] = []
        for slot in sorted(self._owned):
            room = max_records - len(messages)
            if room <= 0:
                break
            rows = self.conn.execute(
                "SELECT offset, key, value, headers, timestamp_ms FROM records "
                "WHERE topic = ? AND partition = ? AND offset >= ? ORDER BY offset LIMIT ?",
                (*slot, self._position[slot], room),
            ).fetchall()
            for offset, key, value, headers, timestamp_ms in rows:
                messages.append(
                    Message(
                        topic=slot[0],
                        partition=slot[1],
                        offset=offset,
                        key=key,
                        value=value,
                        headers=tuple((k, v.encode("latin-1")) for k, v in json.loads(headers)),
                        timestamp_ms=timestamp_ms,
                    )
                )
            if rows:
                self._position[slot] = rows[-1][0] + 1
        return messages

    def commit(self, messages: Sequence[Message], *, wait: bool = True) -> None:
        upto: dict[tuple[str, int], int] = {}
        for message in messages:
            slot = (message.topic, message.partition)
            upto[slot] = max(upto.get(slot, 0), message.offset + 1)
        if not upto:
            return
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany(
                "INSERT INTO committed (grp, topic, partition, offset) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (grp, topic, partition) DO UPDATE SET offset = excluded.offset",
                [
                    (self.group, topic, partition, offset)
                    for (topic, partition), offset in upto.items()
                ],
            )
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise BusError(f"embedded log {self.bus.path}: commit failed: {exc}") from exc

    def close(self) -> None:
        try:
            self.conn.execute(
                "DELETE FROM members WHERE grp = ? AND member = ?", (self.group, self.member_id)
            )
        finally:
            self.conn.close()
