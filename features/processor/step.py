"""The stream processor: the stream views, computed incrementally from the event stream.

A step of the one consumer loop (``events.streaming``; ``manage.py consume stream-features``),
group ``stream-features``, on the topics of ``features.definitions.topics()``. Per batch of
polled records:

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
   (``ProcessorSettings``: ``FEATURES_OFFLINE_FLUSH_SECONDS``, 1 s; 0: every batch) or
   ``OFFLINE_MAX_BATCHES`` batches, for the batches since the last files. A file per batch would
   make a small-files offline store and cost the processor a large share of its time
   (docs/performance.md);
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
import logging
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from threading import Event as StopFlag
from typing import Any

from prometheus_client import Histogram

from events.batching import BatchStats
from events.bus import Bus, Consumer, Message, Record
from events.contracts import dead_letter_topic, topic_name
from events.deadletters import DeadLetterer
from events.streaming import (
    Backoff,
    BatchStep,
    ConsumerOptions,
    Publisher,
    consume,
    offsets_commit,
)
from features.definitions import STREAM_VIEWS, View, topics
from features.processor.marks import Partition, low_watermark, partition_load
from features.processor.offline import Unwritten, offline_append
from features.processor.online import OnlineWriter
from features.processor.settings import ProcessorSettings
from features.state import (
    MARKS_KEPT,
    UNAVAILABLE,
    EntityRef,
    EntityRows,
    RedisState,
    SqliteState,
    WindowState,
)
from features.store import FeatureConfig
from features.tables import CREATED_TIMESTAMP, EVENT_TIMESTAMP
from features.windows import Row, evaluate, extract, moment, to_us

log = logging.getLogger(__name__)

CONSUMER = "stream-features"
DEFAULT_GROUP = CONSUMER
LATE = "late"
# Batches whose offline files may wait: the lateness marks of the offset committed before them
# must still be kept when they replay (``features.state.MARKS_KEPT``, about one a batch).
OFFLINE_MAX_BATCHES = MARKS_KEPT // 2
# How long a batch waits for a state or online store that is away (a Redis restarting) before
# the processor gives up and exits, and the backoff between its tries.
STORE_WAIT_MAX_S = 120.0
STORE_RETRY_BASE_S = 0.25
STORE_RETRY_CAP_S = 5.0

FRESHNESS = Histogram(
    "feature_freshness_seconds",
    "From an event's time to its rows in the window state and the online store.",
    ["topic"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
)


def state_from_config(
    config: FeatureConfig, *, views: Sequence[View] = STREAM_VIEWS, timeout_s: float | None = None
) -> WindowState:
    """Return the window state that goes with the online store: Redis (keys under
    ``features:<project>:state:``; ``timeout_s``: ``RedisState.from_url``'s) or SQLite
    (``config.state_path``)."""
    if config.online == "redis":
        return RedisState.from_url(
            config.redis_url,
            prefix=f"features:{config.project}:state:",
            timeout_s=timeout_s,
            views=views,
            lateness_us=config.allowed_lateness_us,
        )
    return SqliteState(config.state_path, views=views, lateness_us=config.allowed_lateness_us)


@dataclass
class ProcessorStats(BatchStats):
    events: int = 0
    accepted: int = 0
    late: int = 0
    poison: int = 0
    rows: int = 0
    outputs: int = 0
    # Output rows not emitted: their instant needs rows the state pruned (``_exact``).
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


class StreamProcessor(BatchStep):
    """Computes the stream views from ``bus`` into the stores of ``config``, keeping its window
    state in ``state``. ``namespace`` prefixes every topic it reads and its dead-letter topic
    (``<namespace>.payments.authorized.v1``), so tests and benchmarks share a broker."""

    def __init__(
        self,
        *,
        bus: Bus,
        config: FeatureConfig,
        state: WindowState,
        settings: ProcessorSettings | None = None,
        group: str = DEFAULT_GROUP,
        namespace: str = "",
        views: Sequence[View] = STREAM_VIEWS,
        online: OnlineWriter | None = None,
        close_state: bool = False,
    ):
        self.name = CONSUMER
        self.bus = bus
        self.config = config
        self.state = state
        self.settings = settings or ProcessorSettings()
        self.group = group
        self.namespace = namespace
        self.max_records = self.settings.max_records
        self.poll_timeout_s = self.settings.poll_timeout_s
        self.log_every_s = self.settings.log_every_s
        self.batch_wait_ms = self.settings.batch_wait_ms
        self.views = tuple(views)
        self.views_by_name = {v.name: v for v in self.views}
        self.join_keys = {v.name: v.join_keys for v in self.views}
        self.online = online if online is not None else OnlineWriter(config)
        # The state is closed with the processor when it was opened for it (``consume``).
        self.close_state = close_state
        self._unwritten = Unwritten()
        self.topics = tuple(topic_name(namespace, t) for t in topics())
        self.dead_letter_topic = dead_letter_topic(CONSUMER, namespace=namespace)
        self.dead_letters = DeadLetterer(CONSUMER, self.dead_letter_topic)
        self.publisher = Publisher(bus)
        self.stats = ProcessorStats()
        self.consumer: Consumer | None = None
        self._partitions: dict[tuple[str, int], Partition] = {}
        self._member = uuid.uuid4().hex[:12]
        self._seq = 0
        self._freshness_children: dict[str, Histogram] = {}
        self._files = 0

    # The loop (``events.streaming.consume``).

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
        consume(self, self.bus, stop=stop, until_idle_s=until_idle_s, max_seconds=max_seconds)
        return self.stats

    def open(self) -> None:
        self.bus.ensure_topics(
            [self.dead_letter_topic], partitions=self.settings.dead_letter_partitions
        )

    def submit(self, messages: Sequence[Message]) -> None:
        """Process the batch; while the store is away, try it again (a replayed batch changes
        no value), for up to ``STORE_WAIT_MAX_S``, then raise."""
        backoff = Backoff(base_s=STORE_RETRY_BASE_S, cap_s=STORE_RETRY_CAP_S)
        waited = 0.0
        while True:
            try:
                self.process_batch(messages)
                return
            except UNAVAILABLE as exc:
                pause = backoff.next_delay()
                if waited + pause > STORE_WAIT_MAX_S:
                    raise
                log.warning(
                    "%s: the store is unavailable (%s: %s); the batch is tried again in %.2f s",
                    CONSUMER, type(exc).__name__, exc, pause,
                )  # fmt: skip
                time.sleep(pause)
                waited += pause

    def idle(self) -> None:
        self._offline_flush(force=False)

    def drain(self) -> None:
        self._offline_flush(force=True)

    def close(self) -> None:
        # After a failure the batches not written replay from the committed offsets.
        self._unwritten = Unwritten()
        self.publisher.close()
        if self.close_state:
            self.state.close()

    def describe(self) -> str:
        return (
            f"consuming {len(self.topics)} topics from the {self.bus.name} bus "
            f"(group {self.group}), {self.config.online} state and online store"
        )

    def progress(self) -> str:
        s = self.stats
        return (
            f"{s.events} events, {s.late} late, {s.poison} poison, {s.outputs} rows out, "
            f"batch p50 {s.latency(0.5):.1f} ms p99 {s.latency(0.99):.1f} ms"
        )

    def summary(self) -> str:
        s = self.stats
        return (
            f"{s.events} events, {s.accepted} accepted, {s.late} late, {s.poison} poison, "
            f"{s.outputs} rows out, {s.unexact} not computable, {s.online_rewrites} online "
            f"rewrites, batch p50 {s.latency(0.5):.1f} ms p99 {s.latency(0.99):.1f} ms"
        )

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
            time.monotonic() - (unwritten.since or 0.0) >= self.settings.offline_flush_s
            or unwritten.batches >= OFFLINE_MAX_BATCHES
        )
        if not (force or due):
            return
        self._files = offline_append(
            self.config,
            self.views_by_name,
            unwritten.outputs,
            unwritten.accepted,
            stamp=unwritten.stamp,
            seq=self._files,
        )
        self._unwritten = Unwritten()
        if not offsets_commit(self, unwritten.messages):
            # The new owner of the partitions replays the batches, which changes nothing.
            # Forget the positions: they may be replayed here too.
            self.stats.commit_failures += 1
            self._partitions.clear()

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
                part = partition_load(
                    self.state,
                    group=self.group,
                    topic=message.topic,
                    partition=message.partition,
                    offset=message.offset,
                )
                self._partitions[slot] = part
            bases.setdefault(slot, (message.offset, part.max_ts))
            part.next_offset = message.offset + 1
            part.seen_at = now
            decoded = self.decode_or_dead_letter(message, dead_letters)
            if decoded is None:
                self.stats.poison += 1
                continue
            event, payload = decoded
            ts = to_us(event.occurred_at)
            lateness = self.config.allowed_lateness_us
            if part.max_ts is not None and ts < part.max_ts - lateness:
                self.stats.late += 1
                detail = (
                    f"event time {moment(ts).isoformat()} is more than {lateness / 1e6:g} s "
                    f"before {moment(part.max_ts).isoformat()}, the latest on its partition"
                )
                dead_letters.append(self.dead_letter(message, LATE, detail))
                continue
            part.max_ts = ts if part.max_ts is None else max(part.max_ts, ts)
            accepted.append((message, event, ts))
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
            low_watermark=low_watermark(
                self._partitions, lateness_us=self.config.allowed_lateness_us
            ),
        )
        outputs, latest = self._compute(rows.values(), added.entities, clock=added.clock)
        if dead_letters:
            # Not acknowledged: fail the batch; it is replayed, dead letters included.
            self.publisher.publish_acked(dead_letters)
        online = self._online_write(latest, version=version, clock=added.clock)
        self._freshness(accepted)
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

    def _freshness(self, accepted: list[tuple[Message, Any, int]]) -> None:
        """Count how long each accepted event took from its event time to the state and the
        online store (``feature_freshness_seconds``)."""
        now_us = time.time() * 1e6
        children = self._freshness_children
        for message, _, ts in accepted:
            child = children.get(message.topic)
            if child is None:
                child = children[message.topic] = FRESHNESS.labels(message.topic)
            child.observe(max(now_us - ts, 0.0) / 1e6)

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


def consumer_build(bus: Bus, options: ConsumerOptions) -> StreamProcessor:
    """Return the processor ``manage.py consume stream-features`` runs: the settings' stores
    (the Feast repo applied first if its stream views are not registered yet: a fresh
    deployment) and its own window state, closed with it."""
    from features.repo import repo_ensure_applied

    config = FeatureConfig.from_settings()
    repo_ensure_applied(config, STREAM_VIEWS)
    return StreamProcessor(
        bus=bus,
        config=config,
        state=state_from_config(config),
        settings=ProcessorSettings.from_settings(**options.settings_overrides()),
        group=options.group or DEFAULT_GROUP,
        namespace=options.namespace,
        close_state=True,
    )
