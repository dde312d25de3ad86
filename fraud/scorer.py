"""The scorer: ``payments.authorized.v1`` in, one ``FraudScore`` and one ``fraud.scored.v1`` out
per payment event.

A micro-batch loop over a bus consumer (group ``fraud-scorer``). Per batch of polled records:

1. decode each record; a poison one goes to ``deadletter.fraud-scorer``, never retried;
2. read the feature service for the batch in ONE online read with a time budget
   (``fraud.feature_reads``); a failed or late read degrades the whole batch: every stored
   feature missing (LightGBM's missing-value path), the score marked degraded;
3. score: the champion decides except for the canaries' share of cards, shadows score every
   row (``fraud.scoring``), decisions by the deciding deployment's thresholds;
4. one transaction (``fraud.services.scores_record``): the scores (unique on the payment event
   id, so at-least-once input gives exactly one score), shadow scores and review items, for
   the rows this batch inserted. A payment scored already (a redelivery after a crash, a
   partition that moved between scorers) is not inserted: its first score stands, and it is
   finished (5, 7) if it never was. Such payments are rare, so they are found by the insert
   itself rather than by a query before every batch (which cost as much as the feature
   read): a redelivered one is scored again for nothing;
5. after the commit: the ``fraud.scored.v1`` events of the rows inserted go to the bus, in the
   batch's order (a card's verdicts keep its payments' order), without waiting for the
   acknowledgements. Straight from the scorer, not through the transactional outbox: the
   scorer is a stream consumer whose input offsets are committed only after its effects, so
   a crash replays the batch and the replay sends what may not have gone (the event id is
   derived from the payment's, the same event again). The outbox would add a table write, a
   relay round trip and a second publish path for no guarantee more;
6. the open analyst pages are told of new flags (``fraud.live.FlagPusher``, not waited for);
7. every ``log_flush_s`` (1 s) or ``log_flush_rows`` vectors, not every batch: the served vectors
   of the rows inserted (and of earlier ones found unlogged) go to the feature log in one file;
   once it is written and their events acknowledged, the scores are marked logged and the
   offsets of those batches committed. Under light load batches hold a few events each: a
   file per batch would be a file every few milliseconds.

``run`` overlaps big batches (a backlog): steps 1-3 of a batch (decoding, the feature read,
the model: the main thread) run while steps 4-6 of the batch before run on a recording thread
(waiting on PostgreSQL, then sending); a batch is recorded only once the one before it is, and
what happens at 7 (the log, the marks, the commit) only to batches recorded. So batches are
recorded, sent and committed in their order, one at a time, as without the overlap, and a
failure to record one stops the run with its offsets and those of the batches after it
uncommitted. Batches of fewer than ``overlap_min_records`` records
(``FRAUD_OVERLAP_MIN_RECORDS``) are recorded on the main thread before the next poll: under
light load the overlap gains nothing and the thread hand-off costs CPU.

Crash safety: a crash before 4 replays the batch and scores it then; between 4 and the commit of
7 the replay finds the events scored, and sends and logs those not marked logged (every score
keeps its served vector, ``FraudScore.features``). A log write or a publish that fails leaves
its scores unlogged: a sweep of scores left unlogged logs and publishes them again.

Models come from the ``Deployment`` table (``fraud.deployments``), reloaded without a restart
when it changes; with no usable champion the scorer reads nothing and says why.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from datetime import timedelta
from threading import Event as StopFlag

from django.utils import timezone

from events.batching import BatchStats, IdleClock
from events.bus import Bus, BusError, Consumer, Message, Producer, Record, Sending
from events.contracts import FraudScored, PaymentAuthorized, PoisonMessage, decode
from features.store import FeatureConfig
from fraud.deployments import DeploymentWatcher
from fraud.feature_log import LogItem, feature_log_items, feature_log_pool, feature_log_warm
from fraud.feature_reads import FeatureReader
from fraud.live import FlagPusher
from fraud.models import FraudScore
from fraud.scoring import (
    ModelSet,
    payment_request,
    score_batch,
    unserved_vector,
    vector_record,
)
from fraud.selectors import scores_unlogged
from fraud.services import (
    ScoreDraft,
    log_items,
    scored_event,
    scores_log_sweep,
    scores_mark_logged,
    scores_record,
)

log = logging.getLogger(__name__)

CONSUMER = "fraud-scorer"
DEFAULT_GROUP = CONSUMER
# The sweep logs scores left unlogged this long after they were scored (the live path logs
# its own rows within ``log_flush_s``).
UNLOGGED_AFTER = timedelta(seconds=30)
# How long ``run`` waits for the feature log worker to start.
LOG_WARM_S = 60.0


@dataclass
class ScorerStats(BatchStats):
    events: int = 0
    scored: int = 0
    duplicates: int = 0
    degraded: int = 0
    poison: int = 0
    logged: int = 0
    log_failures: int = 0
    publish_failures: int = 0


@dataclass
class Unfinished:
    """Scores recorded and not yet finished: their served vectors (``items``) and score ids in
    the same order, the sendings of their events (records in the same order again), the
    messages whose offsets commit once they are finished, and since when they wait."""

    items: list[LogItem] = field(default_factory=list)
    score_ids: list[int] = field(default_factory=list)
    sends: list[Sending] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    since: float | None = None


@dataclass
class Prepared:
    """A polled batch decoded and scored, nothing recorded yet: the messages as polled, a
    draft per distinct payment event, the dead letters of the poison ones, how many records
    repeated an event of the batch, and when the batch started (``perf_counter``)."""

    messages: Sequence[Message]
    drafts: list[ScoreDraft]
    dead_letters: list[Record]
    repeats: int
    started: float


@dataclass(frozen=True)
class ScorerSettings:
    """How the scorer batches, reads and decides (``FRAUD_*`` settings)."""

    max_records: int = 200
    poll_timeout_s: float = 0.05
    threads: int = 1
    feature_timeout_s: float = 0.25
    degraded_review_cents: int = 5000
    deployment_poll_s: float = 2.0
    explain_all: bool = False
    log_sweep_s: float = 10.0
    # How long a flush waits for the acknowledgements of events still unacknowledged.
    publish_timeout_s: float = 30.0
    log_flush_s: float = 1.0
    log_flush_rows: int = 1000
    # ``run`` records a batch of at least this many records while it scores the next one.
    overlap_min_records: int = 50
    log_every_s: float = 10.0
    # Feature log writes in a child process (``fraud.feature_log.feature_log_pool``), as
    # ``manage.py score`` runs; in-process tests use a thread.
    log_process: bool = False
    # Partitions of the topics the scorer creates: its verdicts and its dead letters.
    topic_partitions: int = 3
    service: str = "fraud_scoring_v1"

    @classmethod
    def from_settings(cls, **overrides) -> ScorerSettings:
        from django.conf import settings

        base = cls(
            max_records=settings.FRAUD_BATCH_MAX,
            threads=settings.FRAUD_MODEL_THREADS,
            feature_timeout_s=settings.FRAUD_FEATURE_TIMEOUT_MS / 1000,
            degraded_review_cents=settings.FRAUD_DEGRADED_REVIEW_CENTS,
            deployment_poll_s=settings.FRAUD_DEPLOYMENT_POLL_SECONDS,
            explain_all=settings.FRAUD_EXPLAIN_ALL,
            log_flush_s=settings.FRAUD_LOG_FLUSH_SECONDS,
            overlap_min_records=settings.FRAUD_OVERLAP_MIN_RECORDS,
            log_process=True,
            topic_partitions=settings.EVENT_TOPIC_PARTITIONS,
        )
        return replace(base, **overrides)


class Scorer:
    """Scores ``payments.authorized.v1`` from ``bus`` with features of ``config``. ``namespace``
    prefixes the topic it reads and its dead-letter topic, so tests and benchmarks share a
    broker."""

    def __init__(
        self,
        *,
        bus: Bus,
        config: FeatureConfig,
        settings: ScorerSettings | None = None,
        group: str = DEFAULT_GROUP,
        namespace: str = "",
        watcher: DeploymentWatcher | None = None,
    ):
        self.bus = bus
        self.config = config
        self.settings = settings or ScorerSettings()
        self.group = group
        prefix = f"{namespace}." if namespace else ""
        self.topic = f"{prefix}{PaymentAuthorized.topic}"
        self.dead_letter_topic = f"{prefix}deadletter.{CONSUMER}"
        self.scored_topic = f"{prefix}{FraudScored.topic}"
        self.watcher = watcher or DeploymentWatcher(poll_s=self.settings.deployment_poll_s)
        self.reader = FeatureReader(
            config, service=self.settings.service, timeout_s=self.settings.feature_timeout_s
        )
        self.stats = ScorerStats()
        self.consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._logged = (time.monotonic(), 0)
        self._swept = time.monotonic()
        self._degraded_said = 0.0
        # Scored and recorded, waiting for ``flush``; the feature log write in flight with what
        # it finishes; the payment event ids of both.
        self._pending = Unfinished()
        self._writing: tuple[Future, Unfinished] | None = None
        self._pending_ids: set[str] = set()
        # ``run``'s recording thread and the batch it is recording.
        self._recorder: ThreadPoolExecutor | None = None
        self._recording: Future[Unfinished] | None = None
        # The marking of a finished feature log write, on the recording thread.
        self._finishing: Future[tuple[int, Exception | None]] | None = None
        self._log_pool = feature_log_pool(process=self.settings.log_process)
        self.flags = FlagPusher()

    # The loop.

    def run(
        self,
        *,
        stop: StopFlag | None = None,
        until_idle_s: float | None = None,
        max_seconds: float | None = None,
    ) -> ScorerStats:
        """Consume until ``stop`` is set, nothing arrived for ``until_idle_s`` seconds (counted
        as ``events.batching.IdleClock`` does), or ``max_seconds`` passed. The batch in
        progress always completes. Without a usable champion it reads nothing and waits."""
        self.bus.ensure_topics(
            [self.scored_topic, self.dead_letter_topic], partitions=self.settings.topic_partitions
        )
        self.reader.warm()
        # The child process imports Feast and loads its writer now (seconds of CPU), not
        # beside the first batches.
        try:
            self._log_pool.submit(feature_log_warm, self.config).result(timeout=LOG_WARM_S)
        except Exception as exc:  # a pool that broke is replaced at its first write
            log.warning("%s: the feature log worker did not start: %s", CONSUMER, exc)
        self.consumer = self.bus.consumer(group=self.group, topics=[self.topic])
        started = time.monotonic()
        idle = IdleClock(self.consumer, until_idle_s)
        # Records a big batch while this thread polls and scores the next.
        self._recorder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fraud-record")
        try:
            while not (stop is not None and stop.is_set()):
                now = time.monotonic()
                if max_seconds is not None and now - started >= max_seconds:
                    break
                models = self.watcher.current()
                if models.champion is None:
                    # Nothing polled, nothing committed: the events wait in the topic.
                    time.sleep(min(self.settings.deployment_poll_s, 0.5))
                    continue
                messages = self.consumer.poll(
                    timeout=self.settings.poll_timeout_s, max_records=self.settings.max_records
                )
                if messages:
                    prepared = self._prepare(messages, models)
                    self._collect()
                    if len(messages) >= self.settings.overlap_min_records:
                        self._recording = self._recorder.submit(self._record, prepared)
                    else:
                        # A thread hand-off costs ~65 µs of CPU: not worth it for little.
                        self._merge(self._record(prepared))
                    idle.busy()
                else:
                    self._collect()
                    if idle.expired():
                        break
                self.flush(force=False)
                self._sweep()
                self._log_progress()
        finally:
            try:
                self._collect()
            finally:
                self._stop()
        return self.stats

    def _collect(self) -> None:
        """Wait for the batch being recorded, if any, and add it to what ``flush`` finishes.
        Its failure is raised here: its offsets are never committed, so it is replayed."""
        if self._recording is None:
            return
        recording, self._recording = self._recording, None
        self._merge(recording.result())

    def _stop(self) -> None:
        """Finish what was recorded (the log write, the marks, the commit), then let go of
        the recording thread (and its database connection), the log worker, the consumer,
        the feature reader and the producer."""
        from django.db import connections

        try:
            self.flush()
        finally:
            recorder, self._recorder = self._recorder, None
            if recorder is not None:
                recorder.submit(connections.close_all).result()
                recorder.shutdown()
            self._log_pool.shutdown()
            self.flags.close()
            if self.consumer is not None:
                self.consumer.close()
                self.consumer = None
            self.reader.close()
            if self._producer is not None:
                self._producer.close()
                self._producer = None
            self._log_progress(force=True)

    def _log_progress(self, *, force: bool = False) -> None:
        since, events = self._logged
        now = time.monotonic()
        if not force and now - since < self.settings.log_every_s:
            return
        if not force and self.stats.events == events:
            self._logged = (now, events)
            return
        rate = (self.stats.events - events) / max(now - since, 1e-9)
        log.info(
            "%s: %.0f events/s, %d events, %d scored, %d duplicates, %d degraded, %d poison, "
            "batch p50 %.1f ms p99 %.1f ms",
            CONSUMER, rate, self.stats.events, self.stats.scored, self.stats.duplicates,
            self.stats.degraded, self.stats.poison, self.stats.latency(0.5),
            self.stats.latency(0.99),
        )  # fmt: skip
        self._logged = (now, self.stats.events)

    # One batch.

    def process_batch(self, messages: Sequence[Message], *, models: ModelSet) -> None:
        """Score ``messages`` (as polled) with ``models`` and record them, on this thread. Side
        effects, in order: the scores, shadow scores and review items (one transaction), the
        dead-letter topic, the ``fraud.scored.v1`` events (sent, not waited for), the analyst
        pages' push; then, once ``log_flush_s`` passed or ``log_flush_rows`` are pending
        (``flush``), the feature log, the marks and the offsets. (``run`` does the same with
        the recording of a big batch overlapping the scoring of the next.)"""
        prepared = self._prepare(messages, models)
        self._merge(self._record(prepared))
        at = time.perf_counter()
        self.flush(force=False)
        self.stats.stage("flush", at)

    def _prepare(self, messages: Sequence[Message], models: ModelSet) -> Prepared:
        """Decode ``messages`` and score their payments: reads and computes, writes nothing."""
        started = at = time.perf_counter()
        stamps = [m.timestamp_ms for m in messages if m.timestamp_ms]
        if stamps:
            # How long its oldest event waited, from its producer's send to this batch (the
            # broker, the fetch, the batch before): wall clocks of one machine or of several.
            self.stats.measured("queued", time.time() * 1000 - min(stamps))
        dead_letters: list[Record] = []
        events: dict[uuid.UUID, PaymentAuthorized] = {}
        for message in messages:
            self.stats.events += 1
            try:
                event = decode(message.topic, message.value)
            except PoisonMessage as poison:
                dead_letters.append(self._dead_letter(message, poison.kind, poison.detail))
                continue
            if not isinstance(event, PaymentAuthorized):
                dead_letters.append(
                    self._dead_letter(message, "schema", f"not a payment: {event.topic}")
                )
                continue
            events.setdefault(event.event_id, event)
        self.stats.stage("decode", at)
        drafts = self._score(list(events.values()), models) if events else []
        return Prepared(
            messages=messages,
            drafts=drafts,
            dead_letters=dead_letters,
            repeats=len(messages) - len(dead_letters) - len(events),
            started=started,
        )

    def _record(self, prepared: Prepared) -> Unfinished:
        """Record a prepared batch and send what follows from it (the dead letters, the
        verdicts, the analyst push); return what it leaves to ``flush``. ``run`` may call it
        on its recording thread: it touches no state of the scorer but the counts only it
        keeps, the producer (shared by threads) and a look at ``_pending_ids`` (the batches
        merged before it)."""
        at = time.perf_counter()
        flagged: list[int] = []
        score_ids: dict[uuid.UUID, int] = {}
        done: list[ScoreDraft | FraudScore] = []
        repeated: list[uuid.UUID] = []
        if prepared.drafts:
            recorded = scores_record(drafts=prepared.drafts)
            at = self.stats.stage("record", at)
            flagged, score_ids = recorded.flagged_ids, recorded.score_ids
            self.stats.scored += len(score_ids)
            for draft in prepared.drafts:
                if draft.event.event_id in score_ids:
                    done.append(draft)
                else:
                    repeated.append(draft.event.event_id)
        self.stats.duplicates += prepared.repeats + len(repeated)
        if prepared.dead_letters:
            self._publish(prepared.dead_letters)
        unlogged = [i for i in repeated if str(i) not in self._pending_ids]
        if unlogged:
            # Scored before a crash (or by another scorer), maybe never logged nor published:
            # do both now.
            done += scores_unlogged(event_ids=unlogged)
        batch = Unfinished(messages=list(prepared.messages))
        if done:
            batch.items = log_items(done)
            batch.score_ids = [
                score_ids[d.event.event_id] if isinstance(d, ScoreDraft) else d.id for d in done
            ]
            batch.sends = [
                self.producer().send([scored_event(d).record(self.scored_topic) for d in done])
            ]
        if flagged:
            self.flags.push(flagged)
        self.stats.stage("after", at)
        self.stats.batches += 1
        self.stats.latencies_ms.append((time.perf_counter() - prepared.started) * 1000)
        return batch

    def _merge(self, batch: Unfinished) -> None:
        """Add a recorded batch to what the next ``flush`` finishes."""
        pending = self._pending
        pending.items += batch.items
        pending.score_ids += batch.score_ids
        pending.sends += batch.sends
        pending.messages += batch.messages
        self._pending_ids.update(item.event_id for item in batch.items)
        if pending.since is None:
            pending.since = time.monotonic()

    def flush(self, *, force: bool = True) -> None:
        """Write the pending served vectors to the feature log (one file, in a background
        thread, so batches go on meanwhile), then commit the pending offsets; unless ``force``,
        only once ``log_flush_s`` passed since the oldest pending batch or ``log_flush_rows``
        vectors are pending, and without waiting for the write. With ``force``, wait for every
        write and commit.

        A crash before the commit replays the batches: their payments are found scored and
        unlogged, and logged then. A failed log write still commits: the rows keep their
        vectors, unlogged, and the sweep logs them.
        """
        self._written(wait=force)
        pending = self._pending
        if pending.since is None:
            return
        due = (
            time.monotonic() - pending.since >= self.settings.log_flush_s
            or len(pending.items) >= self.settings.log_flush_rows
        )
        if not (force or due) or self._writing is not None:
            return
        self._pending = Unfinished()
        # The write touches no database: the marks and the commit happen here, on this thread.
        future = self._log_pool.submit(feature_log_items, self.config, pending.items)
        self._writing = (future, pending)
        if force:
            self._written(wait=True)

    def _written(self, *, wait: bool) -> None:
        """Finish the feature log write in flight once it is done (``wait``: wait for it): mark
        its scores whose events were acknowledged logged, then commit its offsets. In ``run``,
        unless told to wait, the marking goes to the recording thread (a delete of a thousand
        rows a second, 3-5 ms, off the loop's path) and the commit follows once it is done."""
        if self._writing is None:
            return
        future, done = self._writing
        if self._finishing is None:
            if not (wait or future.done()):
                return
            if self._recorder is not None and not wait:
                self._finishing = self._recorder.submit(self._logged_mark, future, done)
                return
            outcome = self._logged_mark(future, done)
        else:
            if not (wait or self._finishing.done()):
                return
            outcome = self._finishing.result()
            self._finishing = None
        self._writing = None
        self._pending_ids.difference_update(i.event_id for i in done.items)
        logged, failed = outcome
        self.stats.logged += logged
        if failed is not None:
            self.stats.log_failures += 1
            if isinstance(failed, BrokenProcessPool):
                log.error("%s: the feature log process died; starting another", CONSUMER)
                self._log_pool = feature_log_pool(process=self.settings.log_process)
        if self.consumer is not None:
            at = time.perf_counter()
            try:
                # Not waited for while consuming: a commit lost is a replay, found scored.
                self.consumer.commit(done.messages, wait=wait)
                self.stats.stage("commit", at)
            except BusError as exc:
                # A rebalance took the partitions: their new owner finds the scores recorded.
                log.warning("%s: commit failed, the batches will be replayed: %s", CONSUMER, exc)

    def _logged_mark(self, future: Future, done: Unfinished) -> tuple[int, Exception | None]:
        """Mark logged the scores of a finished feature log write whose events were
        acknowledged; return how many, and the write's failure if it failed (then nothing
        is marked: the sweep logs them later)."""
        try:
            future.result()
        except Exception as exc:  # BrokenProcessPool included: ``_written`` replaces the pool
            if not isinstance(exc, BrokenProcessPool):
                log.error("%s: feature log write failed; the sweep will retry: %s", CONSUMER, exc)
            return 0, exc
        # Sent a flush interval ago: acknowledged long since, unless the bus is failing.
        at = time.perf_counter()
        timeout = self.settings.publish_timeout_s
        errors = [e for s in done.sends for e in s.result(timeout=timeout)]
        at = self.stats.stage("acks", at)
        sent = [i for i, e in zip(done.score_ids, errors, strict=True) if e is None]
        if len(sent) < len(errors):
            self.stats.publish_failures += len(errors) - len(sent)
            failed = next(e for e in errors if e is not None)
            log.error(
                "%s: %d fraud.scored events not acknowledged (%s); the sweep will publish "
                "them again", CONSUMER, len(errors) - len(sent), failed,
            )  # fmt: skip
        try:
            logged = scores_mark_logged(score_ids=sent)
        except Exception as exc:
            log.exception("%s: marking scores logged failed; the sweep will retry", CONSUMER)
            return 0, exc
        self.stats.stage("mark", at)
        return logged, None

    def _score(self, events: list[PaymentAuthorized], models: ModelSet) -> list[ScoreDraft]:
        requests = [payment_request(e) for e in events]
        request_time = timezone.now()
        at = time.perf_counter()
        vectors = self.reader.read(requests)
        at = self.stats.stage("read", at)
        if vectors is None:
            self.stats.degraded += len(events)
            now = time.monotonic()
            if now - self._degraded_said >= 10.0:
                self._degraded_said = now
                log.warning(
                    "%s: feature store unavailable (%s): scoring degraded",
                    CONSUMER, self.reader.last_error,
                )  # fmt: skip
            vectors = [unserved_vector(r, self.settings.service) for r in requests]
        scored = score_batch(
            models,
            requests=requests,
            vectors=vectors,
            degraded_review_cents=self.settings.degraded_review_cents,
            threads=self.settings.threads,
            explain_all=self.settings.explain_all,
        )
        at = self.stats.stage("model", at)
        scored_at = timezone.now()
        drafts = [
            ScoreDraft(
                event=event,
                scored=outcome,
                features=vector_record(
                    vector,
                    service=self.settings.service,
                    request=request,
                    request_time=request_time,
                ),
                scored_at=scored_at,
                latency_ms=(scored_at - event.occurred_at).total_seconds() * 1000,
            )
            for event, request, vector, outcome in zip(
                events, requests, vectors, scored, strict=True
            )
        ]
        self.stats.stage("drafts", at)
        return drafts

    def _sweep(self) -> None:
        """Log the scores left unlogged for ``UNLOGGED_AFTER`` (a failed write, a crash), at
        most every ``log_sweep_s`` seconds; rows another scorer is logging are skipped."""
        now = time.monotonic()
        if now - self._swept < self.settings.log_sweep_s:
            return
        self._swept = now
        try:
            self.stats.logged += scores_log_sweep(
                config=self.config,
                producer=self.producer(),
                topic=self.scored_topic,
                scored_before=timezone.now() - UNLOGGED_AFTER,
            )
        except Exception:
            self.stats.log_failures += 1
            log.exception("%s: feature log sweep failed; it will retry", CONSUMER)

    def _dead_letter(self, message: Message, kind: str, detail: str) -> Record:
        from events.runner import dead_letter_record

        self.stats.poison += 1
        log.warning(
            "%s: dead-lettering %s[%d]@%d: %s: %s",
            CONSUMER, message.topic, message.partition, message.offset, kind, detail[:200],
        )  # fmt: skip
        record = dead_letter_record(CONSUMER, message, kind, detail)
        return replace(record, topic=self.dead_letter_topic)

    def producer(self) -> Producer:
        """Return the scorer's producer, made at its first use."""
        if self._producer is None:
            # A batch's verdicts are sent together: a linger would only hold them back.
            self._producer = self.bus.producer(linger_ms=0)
        return self._producer

    def _publish(self, records: list[Record]) -> None:
        errors = [e for e in self.producer().publish(records) if e is not None]
        if errors:
            # Not acknowledged: fail the batch; it is replayed (its scores are found recorded).
            raise BusError(f"dead-letter publish failed: {errors[0]}")
