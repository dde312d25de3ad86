"""The stream processor: the stream views, computed incrementally from the event stream.

A micro-batch loop over a bus consumer (group ``stream-features``, the topics of
``features.definitions.topics()``). Per batch of polled records:

1. decode each record; a poison one goes to ``deadletter.stream-features``, never retried;
2. lateness, per (topic, partition): an event whose time is more than the allowed lateness
   before the latest event time already seen on its partition is *late*: it goes to the
   dead-letter topic with kind ``late`` (replayable) and changes nothing else;
3. ``features.windows.extract`` turns the accepted events into rows;
4. the window state (``features.state``) adds the rows and reads back every touched entity, in
   one transaction, together with each partition's lateness marks;
5. for each touched entity, the view's values at the time of each new row, and again at the
   time of every stored row at or after the earliest new one (an out-of-order event changes
   them): one output row per (entity, event time), stamped ``event_timestamp`` = that time and
   ``created_timestamp`` = the state's clock of the add;
6. the online store gets each touched entity's latest row, one write per view;
7. the offline store gets one Parquet file per view (every output row) and one per topic (the
   accepted events), written to a temporary name and renamed: every ``offline_flush_s``
   (``FEATURES_OFFLINE_FLUSH_SECONDS``, 1 s; 0: every batch) or ``OFFLINE_MAX_BATCHES`` batches,
   for the batches since the last files. A file per batch was twenty files a second for each
   view at 1,000 payments/s (a small-files offline store), and 15 % of the processor's time;
8. only then are the offsets of those batches committed.

Crash safety: a crash anywhere replays the batches from the committed offsets. State adds are
idempotent per event; the lateness decisions replay identically because each partition's max
event time is stored with the offset it holds for, in the same transaction as the rows (entries
for the batch's first offset and for the next one, so whichever offset the group committed is
found); the offline files may hold a row twice, and readers keep, per (keys,
event_timestamp), the latest ``created_timestamp``.
Several processors in one group give the same result as one: the state's clock orders the
created timestamps of rows by the order of the reads they were computed from, and an online
write that another processor's later add made stale is recomputed and written again.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from threading import Event as StopFlag
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from feast.protos.feast.types.Value_pb2 import Value
from google.protobuf.timestamp_pb2 import Timestamp

from events.batching import BatchStats, IdleClock
from events.bus import Bus, BusError, Consumer, Message, Producer, Record
from events.contracts import PoisonMessage, decode
from features.definitions import STREAM_VIEWS, View, topics
from features.state import (
    MARKS_KEPT,
    EntityRef,
    EntityRows,
    RedisState,
    SqliteState,
    WindowState,
)
from features.store import (
    FeatureConfig,
    entity_key,
    feature_store,
    redis_entity_key,
    redis_hash_fields,
    repo_config,
)
from features.tables import CREATED_TIMESTAMP, EVENT_SCHEMA, EVENT_TIMESTAMP, view_table
from features.windows import EPOCH, Row, evaluate, extract, to_us

log = logging.getLogger(__name__)

CONSUMER = "stream-features"
DEFAULT_GROUP = CONSUMER
LATE = "late"
# A partition not read for this long no longer holds back pruning (``_low_watermark``).
PARTITION_IDLE_S = 60.0
# Batches whose offline files may wait: the lateness marks of the offset committed before them
# must still be kept when they replay (``features.state.MARKS_KEPT``, about one a batch).
OFFLINE_MAX_BATCHES = MARKS_KEPT // 2


def state_from_config(
    config: FeatureConfig, *, views: Sequence[View] = STREAM_VIEWS
) -> WindowState:
    """Return the window state that goes with the online store: Redis (keys under
    ``features:<project>:state:``) or SQLite (``config.state_path``)."""
    if config.online == "redis":
        return RedisState.from_url(
            config.redis_url,
            prefix=f"features:{config.project}:state:",
            views=views,
            lateness_us=config.allowed_lateness_us,
        )
    return SqliteState(config.state_path, views=views, lateness_us=config.allowed_lateness_us)


def _moment(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


class OnlineWriter:
    """Writes feature rows to the Feast online store of ``config``.

    On Redis, every view's rows of a batch go in one pipeline of one ``HSET`` per entity:
    Feast keeps an entity's views in one hash (a field per view and feature, named by an mmh3
    of the two, and the view's event time), so a card's rows of several views are one command.
    The fields and values are those Feast's own ``online_write_batch`` writes (a test holds
    the hashes equal); the field names are computed once per view, not per row. Other stores
    get ``online_write_batch`` per view, with rows built here (no ``write_to_online_store``
    DataFrame round trip).

    The processor decides which row is the latest, so Feast's Redis check that skips a row not
    newer than the stored one is off (``skip_dedup``, and no such check here): a corrected row
    at the same event time must replace the stored one.
    """

    def __init__(self, config: FeatureConfig):
        from feast.infra.online_stores.helpers import get_online_store_from_config

        self.store = feature_store(config)
        self.repo_config = repo_config(config)
        if config.online == "redis":
            self.repo_config.online_store.skip_dedup = True
        self.online_store = get_online_store_from_config(self.repo_config.online_store)
        self._feature_views: dict[str, Any] = {}

    def _feature_view(self, name: str) -> Any:
        if name not in self._feature_views:
            self._feature_views[name] = self.store.get_feature_view(name)
        return self._feature_views[name]

    def write_views(self, rows: Sequence[tuple[View, Sequence[Mapping[str, Any]]]]) -> None:
        """Write each view's records (``view_table`` columns, timestamps in µs) as the online
        rows of their entities, replacing what is there; on Redis in one round trip.
        Idempotent."""
        from feast.infra.online_stores.redis import RedisOnlineStore

        if isinstance(self.online_store, RedisOnlineStore):
            self._redis_write(rows)
            return
        for view, records in rows:
            keys = list(view.join_keys)
            data = [
                (
                    entity_key(keys, [r[k] for k in keys]),
                    {name: _value(r[name], dtype) for name, dtype in _dtypes(view)},
                    _moment(r[EVENT_TIMESTAMP]),
                    _moment(r[CREATED_TIMESTAMP]),
                )
                for r in records
            ]
            self.online_store.online_write_batch(
                self.repo_config, self._feature_view(view.name), data, None
            )

    def _redis_write(self, rows: Sequence[tuple[View, Sequence[Mapping[str, Any]]]]) -> None:
        from feast.infra.online_stores.redis import _versioned_fv_name

        repo = self.repo_config
        project, version = repo.project, repo.entity_key_serialization_version
        hashes: dict[bytes, dict[bytes, bytes]] = {}
        for view, records in rows:
            keys = tuple(view.join_keys)
            features = _dtypes(view)
            name = _versioned_fv_name(self._feature_view(view.name), repo)
            fields, stamp_field = redis_hash_fields(name, tuple(f for f, _ in features))
            for r in records:
                key = redis_entity_key(keys, tuple(r[k] for k in keys), project, version)
                mapping = hashes.setdefault(key, {})
                moment = Timestamp()
                moment.FromDatetime(_moment(r[EVENT_TIMESTAMP]))
                mapping[stamp_field] = moment.SerializeToString()
                for (feature, dtype), hashed in zip(features, fields, strict=True):
                    mapping[hashed] = _encoded(r[feature], dtype)
        if not hashes:
            return
        ttl = repo.online_store.key_ttl_seconds
        client = self.online_store._get_client(repo.online_store)
        with client.pipeline(transaction=False) as pipe:
            for key, mapping in hashes.items():
                pipe.hset(key, mapping=mapping)
                if ttl:
                    pipe.expire(name=key, time=ttl)
            pipe.execute()


def _dtypes(view: View) -> list[tuple[str, str]]:
    return [(f.name, f.dtype) for f in view.features]


def _encoded(v: Any, dtype: str) -> bytes:
    if dtype == "int64" and v is not None:
        return _int64(int(v))
    return _value(v, dtype).SerializeToString()


@lru_cache(maxsize=8192)
def _int64(v: int) -> bytes:
    # Window counts repeat endlessly (0, 1, 2...): each is serialized once. (Not floats: 0.0
    # and -0.0 are equal keys of a cache, and different bytes.)
    return _value(v, "int64").SerializeToString()


def _value(v: Any, dtype: str) -> Value:
    if v is None:
        return Value()
    return Value(int64_val=int(v)) if dtype == "int64" else Value(double_val=float(v))


def parquet_append(directory: Path, table: pa.Table, *, stamp: int, seq: int) -> Path:
    """Write ``table`` as a new file of ``directory``, named ``<stamp µs>-<pid>-<seq>.parquet``
    (files sort by time and never collide between processes); write it under a hidden
    temporary name first and rename it, so readers never see a partial file."""
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{stamp:016d}-{os.getpid()}-{seq:06d}.parquet"
    tmp = directory / f".{name}.tmp"
    pq.write_table(table, tmp)
    os.replace(tmp, directory / name)
    return directory / name


@dataclass
class _Partition:
    """Where a partition stands: the next offset expected, its max accepted event time, and
    when (``time.monotonic()``) this process last read from it."""

    next_offset: int
    max_ts: int | None
    seen_at: float = 0.0


@dataclass
class _Unwritten:
    """Batches processed whose offline files are not written yet: their output rows by view,
    their accepted events, the messages whose offsets commit once written, the state clock of
    the latest, and since when (``time.monotonic()``) they wait."""

    outputs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    accepted: list[tuple[Message, Any, int]] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    batches: int = 0
    stamp: int = 0
    since: float | None = None


@dataclass
class ProcessorStats(BatchStats):
    events: int = 0
    accepted: int = 0
    late: int = 0
    poison: int = 0
    rows: int = 0
    outputs: int = 0
    # Output rows not emitted: their instant needs rows the state pruned (see ``_exact``).
    unexact: int = 0
    online_rewrites: int = 0
    commit_failures: int = 0


@dataclass(frozen=True)
class BatchResult:
    """What one batch did: output rows per view, online rows per view, dead letters sent."""

    outputs: dict[str, list[dict[str, Any]]]
    online: dict[str, list[dict[str, Any]]]
    dead_letters: list[Record]
    accepted: int


class StreamProcessor:
    """Computes the stream views from ``bus`` into the stores of ``config``, keeping its window
    state in ``state``. ``namespace`` prefixes every topic it reads and its dead-letter topic
    (``<namespace>.payments.authorized.v1``), so tests and benchmarks share a broker."""

    def __init__(
        self,
        *,
        bus: Bus,
        config: FeatureConfig,
        state: WindowState,
        group: str = DEFAULT_GROUP,
        namespace: str = "",
        max_records: int = 1000,
        poll_timeout_s: float = 0.05,
        views: Sequence[View] = STREAM_VIEWS,
        online: OnlineWriter | None = None,
        log_every_s: float = 10.0,
        dead_letter_partitions: int = 3,
        batch_wait_ms: int | None = None,
        offline_flush_s: float = 0.0,
    ):
        self.bus = bus
        self.config = config
        self.state = state
        self.group = group
        self.namespace = namespace
        self.max_records = max_records
        self.poll_timeout_s = poll_timeout_s
        self.views = tuple(views)
        self.views_by_name = {v.name: v for v in self.views}
        self.join_keys = {v.name: v.join_keys for v in self.views}
        self.online = online if online is not None else OnlineWriter(config)
        self.log_every_s = log_every_s
        self.dead_letter_partitions = dead_letter_partitions
        # How long the bus may hold a fetch to fill a batch (``Bus.consumer``): a batch costs
        # round trips and files whatever its size, so bigger ones cost less per event.
        self.batch_wait_ms = batch_wait_ms
        # How long a batch's offline files may wait for the next batches' (0: none).
        self.offline_flush_s = offline_flush_s
        self._unwritten = _Unwritten()
        prefix = f"{namespace}." if namespace else ""
        self.topics = tuple(f"{prefix}{t}" for t in topics())
        self.dead_letter_topic = f"{prefix}deadletter.{CONSUMER}"
        self.stats = ProcessorStats()
        self.consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._partitions: dict[tuple[str, int], _Partition] = {}
        self._member = uuid.uuid4().hex[:12]
        self._seq = 0
        self._files = 0
        self._logged = (time.monotonic(), 0)

    # The loop.

    def run(
        self,
        *,
        stop: StopFlag | None = None,
        until_idle_s: float | None = None,
        max_seconds: float | None = None,
    ) -> ProcessorStats:
        """Consume until ``stop`` is set, nothing arrived for ``until_idle_s`` seconds (counted
        as ``events.batching.IdleClock`` does), or ``max_seconds`` passed. The batch in progress
        always completes."""
        self.bus.ensure_topics([self.dead_letter_topic], partitions=self.dead_letter_partitions)
        self.consumer = self.bus.consumer(
            group=self.group, topics=self.topics, batch_wait_ms=self.batch_wait_ms
        )
        started = time.monotonic()
        idle = IdleClock(self.consumer, until_idle_s)
        try:
            while not (stop is not None and stop.is_set()):
                now = time.monotonic()
                if max_seconds is not None and now - started >= max_seconds:
                    break
                messages = self.consumer.poll(
                    timeout=self.poll_timeout_s, max_records=self.max_records
                )
                if messages:
                    self.process_batch(messages)
                    idle.busy()
                else:
                    self._offline_flush(force=False)
                    if idle.expired():
                        break
                self._log_progress()
            self._offline_flush(force=True)
        finally:
            # After a failure the batches not written replay from the committed offsets.
            self._unwritten = _Unwritten()
            self.consumer.close()
            self.consumer = None
            if self._producer is not None:
                self._producer.close()
                self._producer = None
            self._log_progress(force=True)
        return self.stats

    def _log_progress(self, *, force: bool = False) -> None:
        since, events = self._logged
        now = time.monotonic()
        if not force and now - since < self.log_every_s:
            return
        if not force and self.stats.events == events:
            self._logged = (now, events)  # idle: nothing to say, and the next rate starts now
            return
        rate = (self.stats.events - events) / max(now - since, 1e-9)
        log.info(
            "%s: %.0f events/s, %d events, %d late, %d poison, %d rows out, batch p50 %.1f ms "
            "p99 %.1f ms",
            CONSUMER, rate, self.stats.events, self.stats.late, self.stats.poison,
            self.stats.outputs, self.stats.latency(0.5), self.stats.latency(0.99),
        )  # fmt: skip
        self._logged = (now, self.stats.events)

    # One batch.

    def process_batch(self, messages: Sequence[Message]) -> BatchResult:
        """Process ``messages`` (as polled: each partition's in offset order). Side effects, in
        order: the window state, the dead-letter topic, the online store; then, once
        ``offline_flush_s`` passed since the oldest batch not written (at once when it is 0) or
        ``OFFLINE_MAX_BATCHES`` wait, the offline Parquet files of those batches and the commit
        of their offsets, when the processor has a consumer (``run``).

        Replaying a batch changes no feature value (see the module docstring).
        """
        started = time.perf_counter()
        try:
            result = self._process(messages)
        except BaseException:
            # What this process believes of its partitions may be ahead of the committed
            # offsets now: read the lateness marks again from the state.
            self._partitions.clear()
            raise
        self._offline_flush(force=False)
        self.stats.batches += 1
        self.stats.latencies_ms.append((time.perf_counter() - started) * 1000)
        return result

    def _offline_flush(self, *, force: bool) -> None:
        """Write the offline files of the batches not written and commit their offsets, if
        ``force`` or they are due."""
        unwritten = self._unwritten
        if not unwritten.batches:
            return
        due = (
            time.monotonic() - (unwritten.since or 0.0) >= self.offline_flush_s
            or unwritten.batches >= OFFLINE_MAX_BATCHES
        )
        if not (force or due):
            return
        self._offline_append(unwritten.outputs, unwritten.accepted, stamp=unwritten.stamp)
        self._unwritten = _Unwritten()
        if self.consumer is None:
            return
        try:
            self.consumer.commit(unwritten.messages)
        except BusError as exc:
            # A rebalance took the partitions away: their new owner replays the batches, which
            # changes nothing. Forget the positions, they may be replayed here too.
            self.stats.commit_failures += 1
            self._partitions.clear()
            log.warning("%s: commit failed, the batches will be replayed: %s", CONSUMER, exc)

    def _process(self, messages: Sequence[Message]) -> BatchResult:
        dead_letters: list[Record] = []
        accepted: list[tuple[Message, Any, int]] = []
        rows: dict[tuple[str, tuple[str, ...], str, str], Row] = {}
        bases: dict[tuple[str, int], tuple[int, int | None]] = {}
        now = time.monotonic()
        for message in messages:
            self.stats.events += 1
            slot = (message.topic, message.partition)
            part = self._partitions.get(slot)
            if part is None or part.next_offset != message.offset:
                part = self._partition_load(message.topic, message.partition, message.offset)
                self._partitions[slot] = part
            bases.setdefault(slot, (message.offset, part.max_ts))
            part.next_offset = message.offset + 1
            part.seen_at = now
            try:
                event = decode(message.topic, message.value)
            except PoisonMessage as poison:
                self.stats.poison += 1
                dead_letters.append(self._dead_letter(message, poison.kind, poison.detail))
                continue
            ts = to_us(event.occurred_at)
            lateness = self.config.allowed_lateness_us
            if part.max_ts is not None and ts < part.max_ts - lateness:
                self.stats.late += 1
                detail = (
                    f"event time {_moment(ts).isoformat()} is more than {lateness / 1e6:g} s "
                    f"before {_moment(part.max_ts).isoformat()}, the latest on its partition"
                )
                dead_letters.append(self._dead_letter(message, LATE, detail))
                continue
            part.max_ts = ts if part.max_ts is None else max(part.max_ts, ts)
            accepted.append((message, event, ts))
            payload = json.loads(message.value)
            for row in extract(
                message.topic, payload, event_id=str(event.event_id), ts=ts, views=self.views
            ):
                rows[(row.view, row.key, row.event_id, row.kind)] = row
        self.stats.accepted += len(accepted)
        self.stats.rows += len(rows)
        # Each partition's entries for both offsets the group may have committed after this
        # batch: its first one (the batch fails) and the next one (it succeeds).
        marks = {}
        for (topic, partition), (offset, max_ts) in bases.items():
            part = self._partitions[(topic, partition)]
            marks[(self.group, topic, partition)] = {offset: max_ts, part.next_offset: part.max_ts}
        self._seq += 1
        version = f"{self._member}:{self._seq}"
        added = self.state.add_and_read(
            rows=list(rows.values()),
            version=version,
            marks=marks,
            low_watermark=self._low_watermark(),
        )
        outputs, latest = self._compute(rows.values(), added.entities, clock=added.clock)
        if dead_letters:
            self._publish(dead_letters)
        online = self._online_write(latest, version=version, clock=added.clock)
        unwritten = self._unwritten
        for view_name, records in outputs.items():
            unwritten.outputs.setdefault(view_name, []).extend(records)
        unwritten.accepted += accepted
        unwritten.messages += messages
        unwritten.batches += 1
        unwritten.stamp = added.clock
        if unwritten.since is None:
            unwritten.since = time.monotonic()
        return BatchResult(
            outputs=outputs, online=online, dead_letters=dead_letters, accepted=len(accepted)
        )

    def _low_watermark(self) -> int | None:
        """Return the earliest time a later event of the partitions this process reads may
        have (each one's latest event time less the lateness): rows a window before it are no
        longer needed by the rows those partitions bring.

        Only partitions read in the last ``PARTITION_IDLE_S`` count, so an idle partition (or
        one now another process's) does not stop pruning. Partitions not counted are not
        known: an event arriving there more than the window and the lateness before this mark
        may find rows pruned (``_exact``)."""
        since = time.monotonic() - PARTITION_IDLE_S
        known = [
            p.max_ts
            for p in self._partitions.values()
            if p.max_ts is not None and p.seen_at >= since
        ]
        return min(known) - self.config.allowed_lateness_us if known else None

    def _partition_load(self, topic: str, partition: int, offset: int) -> _Partition:
        """Return the partition's position at ``offset`` from the lateness marks: the entry of
        that offset, else the latest one before it, else nothing seen yet."""
        marks = self.state.marks(group=self.group, topic=topic, partition=partition)
        if offset in marks:
            return _Partition(offset, marks[offset])
        before = [o for o in marks if o < offset]
        return _Partition(offset, marks[max(before)] if before else None)

    def _dead_letter(self, message: Message, kind: str, detail: str) -> Record:
        log.warning(
            "%s: dead-lettering %s[%d]@%d: %s: %s",
            CONSUMER, message.topic, message.partition, message.offset, kind, detail[:200],
        )  # fmt: skip
        # Imported here: events.runner loads the Django models of the consumer runner, which
        # the processor does not otherwise need.
        from events.runner import dead_letter_record

        record = dead_letter_record(CONSUMER, message, kind, detail)
        return replace(record, topic=self.dead_letter_topic)

    def _publish(self, records: list[Record]) -> None:
        if self._producer is None:
            self._producer = self.bus.producer()
        errors = [e for e in self._producer.publish(records) if e is not None]
        if errors:
            # Not acknowledged: fail the batch; it is replayed, dead letters included.
            raise BusError(f"dead-letter publish failed: {errors[0]}")

    # Compute.

    def _compute(
        self, rows: Iterable[Row], entities: Mapping[EntityRef, EntityRows], *, clock: int
    ) -> tuple[dict[str, list[dict[str, Any]]], dict[EntityRef, dict[str, Any]]]:
        """Return the output rows per view and the latest output row per entity."""
        earliest: dict[EntityRef, int] = {}
        for row in rows:
            ref = (row.view, row.key)
            earliest[ref] = min(earliest.get(ref, row.ts), row.ts)
        outputs: dict[str, list[dict[str, Any]]] = {}
        latest: dict[EntityRef, dict[str, Any]] = {}
        for ref, since in earliest.items():
            view = self.views_by_name[ref[0]]
            state = entities[ref]
            records = self._evaluate(view, ref[1], state, since=since, clock=clock)
            if records:
                outputs.setdefault(view.name, []).extend(records)
                if records[-1][EVENT_TIMESTAMP] == state.rows[-1].ts:
                    latest[ref] = records[-1]
        self.stats.outputs += sum(len(r) for r in outputs.values())
        return outputs, latest

    def _evaluate(
        self, view: View, key: tuple[str, ...], state: EntityRows, *, since: int, clock: int
    ) -> list[dict[str, Any]]:
        """Return ``view``'s rows for ``key`` at each distinct event time >= ``since``."""
        stamps = [r.ts for r in state.rows]
        records = []
        for at in sorted({ts for ts in stamps if ts >= since}):
            if not self._exact(view, state, at):
                self.stats.unexact += 1
                continue
            values = evaluate(view, state.rows[: bisect.bisect_right(stamps, at)], at)
            records.append(
                {
                    **dict(zip(self.join_keys[view.name], key, strict=True)),
                    EVENT_TIMESTAMP: at,
                    CREATED_TIMESTAMP: clock,
                    **values,
                }
            )
        return records

    def _exact(self, view: View, state: EntityRows, at: int) -> bool:
        """Return whether the state holds every row ``view``'s values at ``at`` need: it does
        unless a row within the longest window before ``at`` was pruned. That can happen only
        to an event more than the window and the lateness behind the latest of a partition
        this process had not read when it pruned (another process's partition lagging by that
        much, or one not read yet in a backlog). Such rows are not emitted, and counted
        (``ProcessorStats.unexact``): the offline history misses them; every emitted value,
        and the online one, is exact."""
        window = self.state.retention[view.name].window_us
        return state.floor is None or window is None or at - window >= state.floor

    # Writes.

    def _online_write(
        self, latest: dict[EntityRef, dict[str, Any]], *, version: str, clock: int
    ) -> dict[str, list[dict[str, Any]]]:
        """Write each entity's latest row (every view in one call); then rewrite the rows another
        processor's add made stale (its own write may have landed before this one) until the
        state's version of every written entity is the one its row was computed from."""
        written: dict[str, list[dict[str, Any]]] = {}
        expected = dict.fromkeys(latest, version)
        pending = latest
        for _ in range(100):
            by_view: dict[str, list[dict[str, Any]]] = {}
            for (view_name, _), record in pending.items():
                by_view.setdefault(view_name, []).append(record)
            self.online.write_views(
                [(self.views_by_name[name], records) for name, records in by_view.items()]
            )
            for view_name, records in by_view.items():
                written.setdefault(view_name, []).extend(records)
            if not pending:
                return written
            stale = self.state.changed(expected={ref: expected[ref] for ref in pending})
            if not stale:
                return written
            self.stats.online_rewrites += len(stale)
            fresh = self.state.read(entities=stale)
            pending = {}
            for ref, state in fresh.items():
                expected[ref] = state.version
                if not state.rows:
                    continue
                view = self.views_by_name[ref[0]]
                at = state.rows[-1].ts
                records = self._evaluate(view, ref[1], state, since=at, clock=clock)
                if records:
                    pending[ref] = records[-1]
        log.error(
            "%s: online rows still changing under this processor after 100 rewrites", CONSUMER
        )
        return written

    def _offline_append(
        self,
        outputs: Mapping[str, list[dict[str, Any]]],
        accepted: Sequence[tuple[Message, Any, int]],
        *,
        stamp: int,
    ) -> None:
        """Append the output rows (one file per view) and the accepted events (one file per
        topic, under its declared name) to the offline store."""
        for view_name, records in outputs.items():
            view = self.views_by_name[view_name]
            self._files += 1
            parquet_append(
                self.config.view_dir(view_name),
                view_table(view, records),
                stamp=stamp,
                seq=self._files,
            )
        by_topic: dict[str, dict[str, list[Any]]] = {}
        for message, event, ts in accepted:
            columns = by_topic.setdefault(event.topic, {name: [] for name in EVENT_SCHEMA.names})
            columns["event_id"].append(str(event.event_id))
            columns["occurred_at"].append(ts)
            columns["key"].append(message.key)
            columns["payload"].append(message.value.decode())
        for topic, columns in by_topic.items():
            self._files += 1
            parquet_append(
                self.config.events_dir(topic),
                pa.table(columns, schema=EVENT_SCHEMA),
                stamp=stamp,
                seq=self._files,
            )
