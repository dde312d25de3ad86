"""The publication mark: whether a batch snapshot is being written to the online store.

A batch snapshot with instant P is the point-in-time join's answer for every payment at
``t >= P`` (within the view's ttl) from the moment its offline file exists, but the online store
serves it only once its write has completed: until then a payment at ``t >= P`` is served the
previous snapshot for some entities and P for others. Materialisation
(``features.materialize``) therefore calls ``publication_begin`` before it writes a snapshot,
writes it offline then online, then calls ``publication_end``; the scorer calls
``publication_read`` once per batch, *before* reading the features, and ``batch_exact`` per
payment and batch view.

Why a reader cannot miss a publication. ``publication_begin`` first makes a mark meaning "a
publication is starting, anything from now on is suspect" (``PENDING_UNKNOWN``) visible, and
only then takes P from the clock and writes it: a read that sees no pending mark started before
P was taken, so any payment it is made for has ``t < P`` (a payment is read after it happened),
and the join gives that payment the previous snapshot, which is what the store holds (rows
already rewritten by P carry ``event_timestamp`` P > t and ``batch_exact`` refuses them). A read
that sees no pending mark after a publication ended reads, afterwards, a store whose write of
that snapshot had completed, since the mark is cleared only then; an entity absent from that
snapshot has no row at its instant offline either, so the null served is the join's null too.
This holds on one clock: payments stamped by a host whose clock is ahead of the
materialiser's by d can be missed for d after P.

Where the mark lives, one per Feast project: on Redis (``config.online == "redis"``) the hash
``features:<project>:publication`` (fields ``pending``, ``done``); otherwise one row of a table
in ``<data_dir>/publication.sqlite3`` (WAL: readers never wait for the writer).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from features.store import FeatureConfig

# ``pending_us`` while a publication has begun but not yet taken its instant: every payment
# from now on is suspect, and 0 is at or before every payment's instant.
PENDING_UNKNOWN = 0

SQLITE_FILE = "publication.sqlite3"

# The scorer reads the mark once per batch on its hot path: a Redis that hangs must fail the
# read within the feature read's default budget (FRAUD_FEATURE_TIMEOUT_MS, 250 ms), and with no
# retry (redis-py's default retries took 4-13 s per call with Redis down, docs/operations.md).
REDIS_TIMEOUT_S = 0.25

_SCHEMA = """
CREATE TABLE IF NOT EXISTS publication (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    pending_us INTEGER,
    done_us INTEGER
);
INSERT OR IGNORE INTO publication (id) VALUES (1);
"""

# Clear ``pending`` only if it is still this publication's (a later one may have begun since).
_END_SCRIPT = """
if redis.call('HGET', KEYS[1], 'pending') == ARGV[1] then
    redis.call('HDEL', KEYS[1], 'pending')
end
redis.call('HSET', KEYS[1], 'done', ARGV[1])
"""


@dataclass(frozen=True)
class Publication:
    """What the mark says. ``pending_us``: the instant (µs since the epoch) of the snapshot
    being written online, ``PENDING_UNKNOWN`` while a publication starts, ``None`` when none is
    in progress. ``done_us``: the instant of the last snapshot whose online write completed,
    ``None`` before the first."""

    pending_us: int | None
    done_us: int | None


def publication_key(config: FeatureConfig) -> str:
    """Return the Redis key of ``config``'s mark (a hash: ``pending``, ``done``, integers)."""
    return f"features:{config.project}:publication"


def publication_begin(config: FeatureConfig, *, at_us: int | None = None) -> int:
    """Mark a publication in progress and return its instant P (µs): the wall clock once the
    "starting" mark is visible to every reader, or ``at_us`` (a snapshot at a chosen instant).

    Two writes: ``PENDING_UNKNOWN``, then P. Not cleared on failure: a publication that never
    ends leaves every batch read inexact until a later one ends."""
    _pending_write(config, PENDING_UNKNOWN)
    at = _now_us() if at_us is None else int(at_us)
    _pending_write(config, at)
    return at


def publication_end(config: FeatureConfig, at_us: int) -> None:
    """Record that the snapshot of instant ``at_us`` is completely written online: ``done`` =
    ``at_us``, and the pending mark cleared if it is still that instant's (one atomic write).
    Idempotent."""
    if config.online == "redis":
        _redis(config.redis_url).eval(_END_SCRIPT, 1, publication_key(config), int(at_us))
        return
    _sqlite(config).execute(
        "UPDATE publication SET pending_us = CASE WHEN pending_us = ?1 THEN NULL "
        "ELSE pending_us END, done_us = ?1 WHERE id = 1",
        (int(at_us),),
    )


def publication_read(config: FeatureConfig) -> Publication:
    """Return the mark: one ``HMGET`` on Redis, one ``SELECT`` on SQLite (a connection kept per
    thread). Read only. Call it before reading the features it vouches for."""
    if config.online == "redis":
        pending, done = _redis(config.redis_url).hmget(publication_key(config), "pending", "done")
    else:
        pending, done = (
            _sqlite(config)
            .execute("SELECT pending_us, done_us FROM publication WHERE id = 1")
            .fetchone()
        )
    return publication_from_fields(pending, done)


def publication_from_fields(pending: Any, done: Any) -> Publication:
    """Return the mark of the Redis hash's ``pending`` and ``done`` fields (bytes or None) as
    read by another client (``features.serving`` reads them in its script, before the rows)."""
    return Publication(pending_us=_int(pending), done_us=_int(done))


def batch_exact(publication: Publication, *, served_us: int | None, at_us: int) -> bool:
    """Return whether a batch view row served with event time ``served_us`` (``None``: no row)
    to a payment at ``at_us`` (µs) is the point-in-time join's row, given ``publication`` read
    before the features were.

    Not exact: a row stamped after the payment (a snapshot being published after it: the join
    gives that payment the one before), or any read while a publication of an instant at or
    before the payment is pending (``PENDING_UNKNOWN`` included): some entities may still hold
    the previous snapshot. Otherwise exact: every snapshot at or before the payment finished
    its online write before the mark was read (the module docstring says why)."""
    if served_us is not None and served_us > at_us:
        return False
    return publication.pending_us is None or publication.pending_us > at_us


def _now_us() -> int:
    return time.time_ns() // 1000


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _pending_write(config: FeatureConfig, at_us: int) -> None:
    if config.online == "redis":
        _redis(config.redis_url).hset(publication_key(config), "pending", at_us)
        return
    _sqlite(config).execute("UPDATE publication SET pending_us = ? WHERE id = 1", (at_us,))


@lru_cache(maxsize=8)
def _redis(url: str) -> Any:
    from redis import Redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return Redis.from_url(
        url,
        socket_timeout=REDIS_TIMEOUT_S,
        socket_connect_timeout=REDIS_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),
    )


_connections = threading.local()


def _sqlite(config: FeatureConfig) -> sqlite3.Connection:
    """Return this thread's connection to ``config``'s mark file, creating the file and its row
    on first use. Autocommit: each statement is its own transaction."""
    path = Path(config.data_dir) / SQLITE_FILE
    cache: dict[Path, sqlite3.Connection] = _connections.__dict__.setdefault("by_path", {})
    conn = cache.get(path)
    if conn is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=30.0, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.executescript(_SCHEMA)
        cache[path] = conn
    return conn
