"""The scorer: ``payments.authorized.v1`` in, one ``FraudScore`` and one ``fraud.scored.v1`` out
per payment event. The same class scores the second checkpoint, the fare at the trip's end
(``payments.capture_requested.v1``, ``manage.py consume fraud-capture-scorer``): its settings'
feature service names the checkpoint, whose events, deployments and verdicts it then reads,
runs and publishes.

A step of the one consumer loop (``events.streaming``; ``manage.py consume fraud-scorer``),
group ``fraud-scorer``. Per batch of polled records:

1. decode each record; a poison one goes to ``deadletter.fraud-scorer``, never retried;
2. read the feature service for the batch in ONE online read with a time budget
   (``fraud.feature_reads``); a failed or late read degrades the whole batch: every stored
   feature missing (LightGBM's missing-value path), the score marked degraded;
3. score: the champion decides except for the canaries' share of cards, shadows score every
   row (``fraud.scoring``), decisions by the deciding deployment's thresholds, then the lists
   and rules in force (``fraud.policy``, reloaded when they change) have their say;
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
   (steps 4-7: ``fraud.scorer.recording``)
6. the open analyst pages are told of new flags (``fraud.live.FlagPusher``, not waited for);
7. every ``log_flush_s`` (1 s) or ``log_flush_rows`` vectors, not every batch: the served vectors
   of the rows inserted (and of earlier ones found unlogged) go to the feature log in one file;
   once it is written and their events acknowledged, the scores are marked logged and the
   offsets of those batches committed. Under light load batches hold a few events each: a
   file per batch would be a file every few milliseconds.

The loop overlaps big batches (a backlog): steps 1-3 of a batch (decoding, the feature read,
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
its scores unlogged: a sweep of scores left unlogged logs and publishes them again
(``fraud.scorer.sweep``).

Models come from the ``Deployment`` table (``fraud.deployments``), reloaded without a restart
when it changes; with no usable champion the scorer reads nothing and says why.
"""

from __future__ import annotations

import logging
import sys
import time
import uuid
from collections.abc import Sequence
from threading import Event as StopFlag

from django.utils import timezone

from events.bus import Bus, EndsRequest, Message, Record
from events.contracts import (
    CheckpointPayment,
    FraudScored,
    PaymentAuthorized,
    PaymentCaptureRequested,
    dead_letter_topic,
    topic_name,
)
from events.deadletters import DeadLetterer
from events.streaming import BatchStep, ConsumerOptions, Publisher, consume, offsets_commit
from features.definitions import FEATURE_SERVICES
from features.processor.step import state_from_config
from features.store import FeatureConfig
from features.stream_serving import EXACT, Served, StreamServing
from features.windows import to_us
from fraud.deployments import DeploymentWatcher
from fraud.feature_log import feature_log_warm
from fraud.feature_reads import FeatureReader
from fraud.live import FlagPusher
from fraud.policy import policy_apply
from fraud.policy_watch import PolicyWatcher
from fraud.scorer.metrics import ScorerMetrics
from fraud.scorer.recording import Prepared, Recording
from fraud.scorer.settings import (
    CAPTURE_CONSUMER,
    CAPTURE_SERVICE,
    CONSUMER,
    LOG_WARM_S,
    ScorerSettings,
    ScorerStats,
)
from fraud.scorer.sweep import LogSweep
from fraud.scoring import (
    ModelSet,
    payment_request,
    score_batch,
    unserved_vector,
    vector_record,
)
from fraud.services import ScoreDraft

log = logging.getLogger(__name__)


# What each checkpoint scores, and the consumer that does.
CHECKPOINT_EVENTS: dict[str, type[CheckpointPayment]] = {
    e.checkpoint: e for e in (PaymentAuthorized, PaymentCaptureRequested)
}
CHECKPOINT_CONSUMERS = {
    PaymentAuthorized.checkpoint: CONSUMER,
    PaymentCaptureRequested.checkpoint: CAPTURE_CONSUMER,
}


class Scorer(BatchStep):
    """Scores its checkpoint's payment events (``payments.authorized.v1`` for the default
    service) from ``bus`` with features of ``config``. ``namespace`` prefixes the topic it
    reads and its dead-letter topic, so tests and benchmarks share a broker."""

    def __init__(
        self,
        *,
        bus: Bus,
        config: FeatureConfig,
        settings: ScorerSettings | None = None,
        group: str | None = None,
        namespace: str = "",
        watcher: DeploymentWatcher | None = None,
    ):
        self.settings = settings or ScorerSettings()
        self.checkpoint = FEATURE_SERVICES[self.settings.service].checkpoint
        self.event_type = CHECKPOINT_EVENTS[self.checkpoint]
        self.name = CHECKPOINT_CONSUMERS[self.checkpoint]
        self.bus = bus
        self.config = config
        # Its own consumer group by default: each checkpoint reads its topic once.
        self.group = group or self.name
        self.max_records = self.settings.max_records
        self.poll_timeout_s = self.settings.poll_timeout_s
        self.not_ready_wait_s = min(self.settings.deployment_poll_s, 0.5)
        self.log_every_s = self.settings.log_every_s
        self.topic = topic_name(namespace, self.event_type.topic)
        self.topics = (self.topic,)
        self.dead_letter_topic = dead_letter_topic(self.name, namespace=namespace)
        self.scored_topic = topic_name(namespace, FraudScored.topic)
        self.watcher = watcher or DeploymentWatcher(
            poll_s=self.settings.deployment_poll_s, checkpoint=self.checkpoint
        )
        self.policy = PolicyWatcher(
            service=self.settings.service, poll_s=self.settings.policy_poll_s
        )
        timeout_s = self.settings.feature_timeout_s
        self.reader = FeatureReader(
            config,
            service=self.settings.service,
            timeout_s=timeout_s,
            stream=StreamServing(
                state=state_from_config(config, timeout_s=timeout_s),
                bus=bus,
                group=self.settings.processor_group,
                namespace=namespace,
                # The payments it scores count in their own windows (at authorization; a
                # capture request feeds no view, so every view waits for the processor).
                served_topics=(self.event_type.topic,),
                # Its service's stream views only: another service's (v2's card_recency) are
                # the processor's to keep, not a cost of every payment this scorer serves.
                views=tuple(
                    v for v in FEATURE_SERVICES[self.settings.service].views if v.mode == "stream"
                ),
                wait_s=self.settings.consistency_wait_s,
                timeout_s=timeout_s,
            ),
        )
        self.stats = ScorerStats()
        self.consumer = None
        # A batch's verdicts are sent together: a linger would only hold them back.
        self.publisher = Publisher(bus, linger_ms=0)
        self.dead_letters = DeadLetterer(self.name, self.dead_letter_topic)
        self.flags = FlagPusher()
        self.metrics = ScorerMetrics(self.checkpoint)
        self.recording = Recording(
            settings=self.settings,
            stats=self.stats,
            config=config,
            publisher=self.publisher,
            scored_topic=self.scored_topic,
            flags=self.flags,
            commit=self._commit,
            metrics=self.metrics,
        )
        self.sweep = LogSweep(config=config, every_s=self.settings.log_sweep_s, stats=self.stats)
        self._degraded_said = 0.0
        self._models: ModelSet | None = None

    # The loop (``events.streaming.consume``).

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
        consume(self, self.bus, stop=stop, until_idle_s=until_idle_s, max_seconds=max_seconds)
        return self.stats

    def open(self) -> None:
        self.bus.ensure_topics(
            [self.scored_topic, self.dead_letter_topic], partitions=self.settings.topic_partitions
        )
        self.reader.warm()
        # The child process imports Feast and loads its writer now (seconds of CPU), not
        # beside the first batches.
        try:
            self.recording.log_pool.submit(feature_log_warm, self.config).result(timeout=LOG_WARM_S)
        except Exception as exc:  # a pool that broke is replaced at its first write
            log.warning("%s: the feature log worker did not start: %s", CONSUMER, exc)
        self.recording.start()

    def ready(self) -> bool:
        self._models = self.watcher.current()
        return self._models.champion is not None

    def submit(self, messages: Sequence[Message]) -> None:
        prepared = self._prepare(messages, self._models or self.watcher.current())
        self.recording.collect()
        if len(messages) >= self.settings.overlap_min_records:
            self.recording.record_later(prepared)
        else:
            # A thread hand-off costs more CPU than a small batch gains (docs/performance.md).
            self.recording.record_now(prepared)

    def idle(self) -> None:
        self.recording.collect()

    def tick(self) -> None:
        self.flush(force=False)
        self.sweep.maybe_run(publisher=self.publisher, topic=self.scored_topic)

    def close(self) -> None:
        """Collect the batch being recorded, finish what was recorded, then let go of the
        recording thread, the log worker, the analyst push, the feature reader and the
        producer. A failed recording is raised here: its offsets are never committed."""
        try:
            self.recording.collect()
        finally:
            try:
                self.recording.stop()
            finally:
                self.flags.close()
                self.reader.close()
                self.publisher.close()

    def describe(self) -> str:
        return (
            f"consuming {self.topic} from the {self.bus.name} bus (group {self.group}), "
            f"features from the {self.config.online} online store"
        )

    def progress(self) -> str:
        s = self.stats
        return (
            f"{s.events} events, {s.scored} scored, {s.duplicates} duplicates, "
            f"{s.degraded} degraded, {s.stale} stale, {s.poison} poison, "
            f"batch p50 {s.latency(0.5):.1f} ms p99 {s.latency(0.99):.1f} ms"
        )

    def summary(self) -> str:
        return f"{self.progress()} (stages p50/p99 ms: {self.stats.stages_line()})"

    def _commit(self, messages: list[Message], wait: bool) -> None:
        at = time.perf_counter()
        if offsets_commit(self, messages, wait=wait):
            self.stats.stage("commit", at)

    # One batch.

    def process_batch(self, messages: Sequence[Message], *, models: ModelSet) -> None:
        """Score ``messages`` (as polled) with ``models`` and record them, on this thread. Side
        effects, in order: the scores, shadow scores and review items (one transaction), the
        dead-letter topic, the ``fraud.scored.v1`` events (sent, not waited for), the analyst
        pages' push; then, once ``log_flush_s`` passed or ``log_flush_rows`` are pending
        (``flush``), the feature log, the marks and the offsets. (The loop does the same with
        the recording of a big batch overlapping the scoring of the next.)"""
        prepared = self._prepare(messages, models)
        self.recording.record_now(prepared)
        at = time.perf_counter()
        self.flush(force=False)
        self.stats.stage("flush", at)

    def flush(self, *, force: bool = True) -> None:
        """Finish the batches recorded (``Recording.flush``): the feature log, the marks, the
        offsets; unless ``force``, only once they are due."""
        self.recording.flush(force=force)

    def _prepare(self, messages: Sequence[Message], models: ModelSet) -> Prepared:
        """Decode ``messages`` and score their payments: reads and computes, writes nothing."""
        started = at = time.perf_counter()
        # The log's ends, asked now so the round trip overlaps the decoding.
        ends = self.reader.prefetch()
        stamps = [m.timestamp_ms for m in messages if m.timestamp_ms]
        if stamps:
            # How long its oldest event waited, from its producer's send to this batch (the
            # broker, the fetch, the batch before): wall clocks of one machine or of several.
            self.stats.measured("queued", time.time() * 1000 - min(stamps))
        dead_letters: list[Record] = []
        events: dict[uuid.UUID, CheckpointPayment] = {}
        served: dict[uuid.UUID, Served] = {}
        for message in messages:
            self.stats.events += 1
            decoded = self.decode_or_dead_letter(message, dead_letters)
            if decoded is None:
                continue
            event, payload = decoded
            if not isinstance(event, self.event_type):
                dead_letters.append(
                    self.dead_letter(
                        message, "schema", f"not a {self.event_type.topic} event: {event.topic}"
                    )
                )
                continue
            if event.event_id not in events:
                events[event.event_id] = event
                served[event.event_id] = Served(
                    topic=message.topic,
                    payload=payload,
                    event_id=str(event.event_id),
                    ts=to_us(event.occurred_at),
                )
        self.stats.stage("decode", at)
        drafts = (
            self._score(list(events.values()), models, list(served.values()), ends)
            if events
            else []
        )
        return Prepared(
            messages=messages,
            drafts=drafts,
            dead_letters=dead_letters,
            repeats=len(messages) - len(dead_letters) - len(events),
            started=started,
        )

    def _score(
        self,
        events: list[CheckpointPayment],
        models: ModelSet,
        served: Sequence[Served] = (),
        ends: EndsRequest | None = None,
    ) -> list[ScoreDraft]:
        """Score ``events``: read their vectors with ``served`` (their payment events as read)
        applied to the window state first, then score, explain and decide."""
        requests = [payment_request(e) for e in events]
        request_time = timezone.now()
        at = time.perf_counter()
        vectors = self.reader.read(requests, served, ends)
        at = self.stats.stage("read", at)
        degraded = 0
        if vectors is None:
            degraded = len(events)
            self.stats.degraded += degraded
            now = time.monotonic()
            if now - self._degraded_said >= 10.0:
                self._degraded_said = now
                log.warning(
                    "%s: feature store unavailable (%s): scoring degraded",
                    self.name, self.reader.last_error,
                )  # fmt: skip
            vectors = [unserved_vector(r, self.settings.service) for r in requests]
        exact = sum(1 for v in vectors if v.consistency == EXACT)
        self.stats.exact += exact
        self.stats.stale += len(vectors) - exact
        self.metrics.served(exact=exact, stale=len(vectors) - exact - degraded, degraded=degraded)
        scored = score_batch(
            models,
            requests=requests,
            vectors=vectors,
            degraded_review_cents=self.settings.degraded_review_cents,
            threads=self.settings.threads,
            explain_all=self.settings.explain_all,
        )
        at = self.stats.stage("model", at)
        policy = self.policy.current()
        if policy:
            applied = policy_apply(
                policy,
                requests=[
                    {**r, "device_id": e.context.device_id, "ip": e.context.ip}
                    for r, e in zip(requests, events, strict=True)
                ],
                features=[v.features for v in vectors],
                decisions=[s.decision for s in scored],
                now_us=to_us(request_time),
            )
            for outcome, verdict in zip(scored, applied, strict=True):
                outcome.decision, outcome.matched = verdict.decision, verdict.matched
            at = self.stats.stage("policy", at)
        scored_at = timezone.now()
        request_text = request_time.isoformat()
        drafts = [
            ScoreDraft(
                event=event,
                scored=outcome,
                features=vector_record(
                    vector,
                    service=self.settings.service,
                    request=request,
                    request_time=request_text,
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

    def dead_letter(self, message: Message, kind: str, detail: str) -> Record:
        self.stats.poison += 1
        return super().dead_letter(message, kind, detail)


def consumer_build(bus: Bus, options: ConsumerOptions, *, service: str | None = None) -> Scorer:
    """Return the scorer ``manage.py consume fraud-scorer`` runs: the settings' stores (the
    Feast repo applied first if its views are not registered yet: a fresh deployment) and
    ``FRAUD_*`` settings, its first feature read and model load done. ``service``: the
    feature service (and so the checkpoint) it serves, the settings' by default."""
    from features.definitions import VIEWS
    from features.repo import repo_ensure_applied

    config = FeatureConfig.from_settings()
    repo_ensure_applied(config, VIEWS)
    overrides = options.settings_overrides()
    if service is not None:
        overrides["service"] = service
    settings = ScorerSettings.from_settings(**overrides)
    if settings.switch_interval_s is not None:
        # Process-wide: set by the command that runs the scorer, not by the class.
        sys.setswitchinterval(settings.switch_interval_s)
    scorer = Scorer(
        bus=bus,
        config=config,
        settings=settings,
        group=options.group,
        namespace=options.namespace,
    )
    scorer.reader.warm()
    scorer.watcher.current()
    return scorer


def capture_consumer_build(bus: Bus, options: ConsumerOptions) -> Scorer:
    """Return the scorer ``manage.py consume fraud-capture-scorer`` runs: ``consumer_build``'s,
    serving the capture checkpoint's feature service (``fraud_capture_v1``) in its own group."""
    return consumer_build(bus, options, service=CAPTURE_SERVICE)
