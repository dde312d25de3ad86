"""Stream views served at the request's instant, from the window state, and marked exact or stale.

The one semantics (``features.windows.value_at``): a payment's stream features are those of every
event of its entities with event time at or before the payment's, its own included, evaluated at
the payment's instant (windows slide), null past the view's ttl. The training join computes that
from the event history (``features.offline``); this module serves it online:

1. **The server applies what it serves.** The rows of the payments of a batch are added to the
   window state (``WindowState.serve_read``: idempotent per event, as the processor's own add of
   the same payment later is), so a payment counts in its card's windows, and so does every
   earlier payment of the card (a card's payments share a partition: the scorer has seen them
   first), however far behind the stream processor is.
2. **Windows are evaluated at read time** from the entity's rows, not taken from the row the
   processor computed at the entity's latest event: "payments in the last 10 minutes" three hours
   after the last one is 0.
3. **Every other event comes from the processor, and whether it has applied them is checked,
   not assumed.** In the same transaction as the rows, the state answers how far the processor
   got on each partition of its other input topics (its lateness marks: the greatest offset whose
   rows it added); the log answers where each partition ends (``Bus.log_ends``: one request),
   read after the batch's payments were appended. When the processor has applied every record
   that was in its input when the payments were, every event at or before them is in the state.
   When it has not, the server waits for it, polling the state, up to ``wait_s``; then serves
   what the state holds, marked ``stale`` with the lag (the payment's instant minus the event
   time the lagging partitions were applied to).
4. A window the state pruned rows of (``EntityRows.floor``: a row older than the window and the
   allowed lateness behind its partition) cannot be evaluated exactly either: stale too.

What this relies on, and ``features.consistency``'s served-vs-offline job checks: an event that
happens before a payment is appended to its topic before the payment is to its own (the outbox
relay publishes in commit order; the simulator in event order). One that is not shows in that
report as a vector marked exact that differs; the records of one produce call (a relay batch)
can be appended in any order across partitions, the gap docs/features.md describes.

Entities of views no served event feeds (a zone, the platform, a driver) change only by the
processor's adds, which stamp a version: their rows are cached per version and read again only
when it changed (the state answers "unchanged" in the same round trip). Views the server adds to
(a card's velocity) change every batch: the state evaluates them at the requests' instants
itself (``serve_read``'s probes; on Redis inside its script, so their rows never cross the
wire).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from events.bus import Bus, EndsRequest, LogEnds
from events.contracts import topic_name
from features.definitions import STREAM_VIEWS, View, topics
from features.state import (
    Applied,
    EntityRef,
    EntityRows,
    Evaluated,
    WindowState,
    evaluated_at,
)
from features.windows import Row, extract, to_us

EXACT = "exact"
STALE = "stale"
PRESENT = "PRESENT"
NOT_FOUND = "NOT_FOUND"
OUTSIDE_TTL = "OUTSIDE_MAX_AGE"
# Between two reads of the processor's progress while waiting for it.
POLL_S = 0.002
# Cached entities before the cache starts again: the active zones, drivers and the platform.
CACHE_MAX = 50_000


class ViewAnswer(NamedTuple):
    """One view of one request: its values (None: nothing to serve), the status Feast would give
    (``PRESENT``, ``NOT_FOUND``, ``OUTSIDE_MAX_AGE``) and the event time of the entity's latest
    event at or before the instant (µs; None when it has none). A named tuple: a few are made
    per payment, at a third of a frozen dataclass's cost."""

    values: dict[str, Any] | None
    status: str
    latest_us: int | None


@dataclass(frozen=True)
class StreamServed:
    """A batch's stream views: per request, per view name, the answer; each request's
    consistency (``exact``/``stale``) and lag (ms; None when exact); how long the batch waited
    for the processor (ms)."""

    answers: list[dict[str, ViewAnswer]]
    consistency: list[str]
    lag_ms: list[float | None]
    waited_ms: float


@dataclass(frozen=True)
class Served:
    """An event the server serves (and so applies): its topic as read, decoded JSON, id and
    event time (µs)."""

    topic: str
    payload: Mapping[str, Any]
    event_id: str
    ts: int


def instant_us(moment: Any) -> int:
    """Return a request's ``occurred_at`` (aware datetime or ISO 8601) in µs since the epoch."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return to_us(moment)


class StreamServing:
    """Serves ``views`` (stream views) from ``state``. ``group`` is the stream processor's consumer
    group, ``namespace`` the topics' prefix, ``served_topics`` the topics whose events the
    caller passes to ``serve`` (declared names). ``bus`` is the log the processor reads, asked for
    the end offsets of its other input topics (None: no log to ask; every vector is ``stale``).
    """

    def __init__(
        self,
        *,
        state: WindowState,
        bus: Bus | None,
        group: str,
        namespace: str = "",
        views: Sequence[View] = STREAM_VIEWS,
        served_topics: Sequence[str] = ("payments.authorized.v1",),
        wait_s: float = 0.02,
        timeout_s: float = 1.0,
    ):
        self.state = state
        self.group = group
        self.views = {v.name: v for v in views}
        self.served_topics = tuple(served_topics)
        self.wait_s = wait_s
        self.timeout_s = timeout_s
        fed = {v.name for v in views for s in v.sources if s.topic in self.served_topics}
        self.cacheable = {name for name in self.views if name not in fed}
        self.watched = tuple(
            topic_name(namespace, t) for t in topics() if t not in set(self.served_topics)
        )
        self._windows = {
            v.name: state.retention[v.name].window_us if v.name in state.retention else None
            for v in views
        }
        self.ends: LogEnds | None = bus.log_ends(self.watched) if bus is not None else None
        self._cache: dict[EntityRef, EntityRows] = {}
        self._worker: ThreadPoolExecutor | None = None

    def prefetch(self) -> EndsRequest | None:
        """Ask the log for its ends now and return what takes the answer, for ``serve``'s
        ``ends``: a caller that has just polled the events it will serve calls it before
        decoding them, so the round trip overlaps that work. The ends are still read after
        those events were appended, which is all ``serve`` needs of them; a prefetch must not
        serve a later batch (its ends may predate that batch's events)."""
        return self.ends.request(timeout_s=self.timeout_s) if self.ends is not None else None

    def begin(
        self,
        keys: Sequence[Mapping[str, tuple[str, ...] | None]],
        instants: Sequence[int],
        served: Sequence[Served],
        ends: EndsRequest | None = None,
    ) -> Callable[[], StreamServed]:
        """Start ``serve`` and return the call that waits for its result (and raises what it
        raised). On a state that takes calls from several threads (``WindowState.concurrent``)
        it runs on a thread of its own, one batch at a time, so what the caller does until it
        waits overlaps the state's round trip (the scorer reads its batch views meanwhile);
        else at once, here."""
        if not self.state.concurrent:
            result = self.serve(keys, instants, served, ends)
            return lambda: result
        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stream-serving")
        return self._worker.submit(self.serve, keys, instants, served, ends).result

    def serve(
        self,
        keys: Sequence[Mapping[str, tuple[str, ...] | None]],
        instants: Sequence[int],
        served: Sequence[Served],
        ends: EndsRequest | None = None,
    ) -> StreamServed:
        """Return the stream views of each request: ``keys`` gives, per request, each view's
        entity key (None: the request names none), ``instants`` its instant (µs), ``served``
        the events to apply first, ``ends`` this batch's ``prefetch`` (None: read the log's
        ends now). Raises what the state or the log raise."""
        views = list(self.views.values())
        rows: list[Row] = []
        for event in served:
            rows += extract(
                event.topic, event.payload, event_id=event.event_id, ts=event.ts, views=views
            )
        refs: dict[EntityRef, None] = {}
        probes: dict[EntityRef, dict[int, None]] = {}
        for request, at in zip(keys, instants, strict=True):
            for view, key in request.items():
                if key is None:
                    continue
                if view in self.cacheable:
                    refs[(view, key)] = None
                else:
                    probes.setdefault((view, key), {})[at] = None
        started = time.monotonic()
        if ends is None and self.ends is not None:
            ends = self.ends.request(timeout_s=self.timeout_s)
        log_ends = ends() if ends is not None else None
        slots = list(log_ends) if log_ends else []
        entities = self._read(rows, list(refs), slots, probes)
        behind = _behind(log_ends, entities.applied) if log_ends is not None else None
        while behind and time.monotonic() - started < self.wait_s:
            time.sleep(POLL_S)
            entities = self._read([], list(refs), list(behind), probes)
            behind = _behind({s: log_ends[s] for s in behind}, entities.applied)
        waited_ms = (time.monotonic() - started) * 1000
        watermark = None
        if behind:
            marks = [a.max_ts for a in behind.values() if a is not None and a.max_ts is not None]
            watermark = min(marks) if marks else None
        answers, consistency, lags = [], [], []
        memo: dict[tuple[EntityRef, int], tuple[ViewAnswer, bool]] = {}
        for request, at in zip(keys, instants, strict=True):
            answer: dict[str, ViewAnswer] = {}
            exact = behind is not None and not behind
            for view_name, key in request.items():
                if key is None:
                    answer[view_name] = ViewAnswer(None, NOT_FOUND, None)
                    continue
                ref = (view_name, key)
                if (ref, at) not in memo:
                    evaluated = entities.evaluated.get((ref, at))
                    if evaluated is None:
                        evaluated = evaluated_at(self.views[view_name], entities.rows[ref], at)
                    memo[(ref, at)] = self._answer(ref, evaluated, at)
                answer[view_name], complete = memo[(ref, at)]
                exact = exact and complete
            answers.append(answer)
            consistency.append(EXACT if exact else STALE)
            if exact:
                lags.append(None)
            elif watermark is not None:
                lags.append(max(0.0, (at - watermark) / 1000))
            else:
                # The processor never applied a record of a lagging partition (or no log to
                # ask): behind by at least the time since the payment.
                lags.append(max(0.0, time.time() * 1000 - at / 1000))
        return StreamServed(answers, consistency, lags, waited_ms)

    def _answer(self, ref: EntityRef, evaluated: Evaluated, at: int) -> tuple[ViewAnswer, bool]:
        values, latest, floor = evaluated.values, evaluated.latest, evaluated.floor
        window = self._windows[ref[0]]
        complete = floor is None or window is None or at - window >= floor
        if values is not None:
            return ViewAnswer(values, PRESENT, latest), complete
        return ViewAnswer(None, NOT_FOUND if latest is None else OUTSIDE_TTL, latest), complete

    def _read(
        self,
        rows: list[Row],
        refs: list[EntityRef],
        slots: list[tuple[str, int]],
        probes: Mapping[EntityRef, Mapping[int, None]],
    ) -> _Read:
        cache = self._cache
        known = {ref: cache[ref].version for ref in refs if ref in cache}
        read = self.state.serve_read(
            rows=rows,
            entities=refs,
            known=known,
            group=self.group,
            partitions=slots,
            probes=probes,
        )
        found: dict[EntityRef, EntityRows] = {}
        for ref in refs:
            state = read.entities.get(ref)
            if state is None:
                state = cache[ref]
            elif ref[0] in self.cacheable:
                cache[ref] = state
            found[ref] = state
        if len(cache) > CACHE_MAX:
            cache.clear()
        return _Read(found, read.applied, read.evaluated)

    def close(self) -> None:
        if self._worker is not None:
            self._worker.shutdown(wait=True)
        if self.ends is not None:
            self.ends.close()


@dataclass(frozen=True)
class _Read:
    rows: dict[EntityRef, EntityRows]
    applied: dict[tuple[str, int], Applied]
    evaluated: dict[tuple[EntityRef, int], Evaluated]


def _behind(
    ends: Mapping[tuple[str, int], int], applied: Mapping[tuple[str, int], Applied]
) -> dict[tuple[str, int], Applied | None]:
    """Return the partitions whose records before ``ends`` the processor has not all applied."""
    lagging: dict[tuple[str, int], Applied | None] = {}
    for slot, end in ends.items():
        done = applied.get(slot)
        if end > (done.offset if done is not None else 0):
            lagging[slot] = done
    return lagging
