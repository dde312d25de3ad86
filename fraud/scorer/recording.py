"""The scorer's recording and flush: a scored batch's rows in one transaction, its verdicts
and dead letters sent, the analyst pages told; every ``log_flush_s`` the served vectors of the
batches recorded go to the feature log, then their scores are marked logged and their offsets
committed (steps 4-7 of ``fraud.scorer.step``).

``Recording.start`` gives it a recording thread: ``record_later`` then records a big batch there
while the loop reads and scores the next, one batch at a time, in order.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

from events.bus import Message, Record, Sending
from events.streaming import Publisher
from features.store import FeatureConfig
from fraud.feature_log import LogItem, feature_log_items, feature_log_pool
from fraud.live import FlagPusher
from fraud.models import FraudScore
from fraud.scorer.metrics import ScorerMetrics
from fraud.scorer.settings import CONSUMER, ScorerSettings, ScorerStats
from fraud.selectors import scores_unlogged
from fraud.services import (
    ScoreDraft,
    log_items,
    scored_event,
    scores_mark_logged,
    scores_record,
)

log = logging.getLogger(__name__)


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


class Recording:
    """Records the scorer's prepared batches and finishes them (``flush``). ``commit`` commits
    the offsets of finished messages (``wait``: for the broker's answer); ``publisher`` sends
    the verdicts (``scored_topic``) and the dead letters; ``flags`` tells the analyst pages."""

    def __init__(
        self,
        *,
        settings: ScorerSettings,
        stats: ScorerStats,
        config: FeatureConfig,
        publisher: Publisher,
        scored_topic: str,
        flags: FlagPusher,
        commit: Callable[[list[Message], bool], None],
        metrics: ScorerMetrics,
    ):
        self.settings = settings
        self.stats = stats
        self.config = config
        self.publisher = publisher
        self.scored_topic = scored_topic
        self.flags = flags
        self.commit = commit
        self.metrics = metrics
        # Scored and recorded, waiting for ``flush``; the feature log write in flight with what
        # it finishes; the payment event ids of both.
        self._pending = Unfinished()
        self._writing: tuple[Future, Unfinished] | None = None
        self._pending_ids: set[str] = set()
        # The recording thread (``start``) and the batch it is recording.
        self._recorder: ThreadPoolExecutor | None = None
        self._recording: Future[Unfinished] | None = None
        # The marking of a finished feature log write, on the recording thread.
        self._finishing: Future[tuple[int, Exception | None]] | None = None
        self.log_pool = feature_log_pool(process=self.settings.log_process)

    def start(self) -> None:
        """Start the recording thread: big batches are recorded there (``record_later``)."""
        self._recorder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fraud-record")

    def record_later(self, prepared: Prepared) -> None:
        """Record ``prepared`` on the recording thread (the batch before is collected)."""
        self._recording = self._recorder.submit(self.record, prepared)

    def record_now(self, prepared: Prepared) -> None:
        """Record ``prepared`` on this thread and add it to what ``flush`` finishes."""
        self.merge(self.record(prepared))

    def collect(self) -> None:
        """Wait for the batch being recorded, if any, and add it to what ``flush`` finishes.
        Its failure is raised here: its offsets are never committed, so it is replayed."""
        if self._recording is None:
            return
        recording, self._recording = self._recording, None
        self.merge(recording.result())

    def record(self, prepared: Prepared) -> Unfinished:
        """Record a prepared batch and send what follows from it (the dead letters, the
        verdicts, the analyst push); return what it leaves to ``flush``. It may run on the
        recording thread: it touches no state but the counts only it keeps, the producer
        (shared by threads) and a look at ``_pending_ids`` (the batches merged before it)."""
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
            self.metrics.recorded(done)
        self.stats.duplicates += prepared.repeats + len(repeated)
        if prepared.dead_letters:
            # Not acknowledged: fail the batch; it is replayed (its scores are found recorded).
            self.publisher.publish_acked(prepared.dead_letters)
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
            records = [scored_event(d).record(self.scored_topic) for d in done]
            batch.sends = [self.publisher.producer().send(records)]
        if flagged:
            self.flags.push(flagged)
        self.stats.stage("after", at)
        self.stats.batches += 1
        self.stats.latencies_ms.append((time.perf_counter() - prepared.started) * 1000)
        return batch

    def merge(self, batch: Unfinished) -> None:
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
        future = self.log_pool.submit(feature_log_items, self.config, pending.items)
        self._writing = (future, pending)
        if force:
            self._written(wait=True)

    def _written(self, *, wait: bool) -> None:
        """Finish the feature log write in flight once it is done (``wait``: wait for it): mark
        its scores whose events were acknowledged logged, then commit its offsets. With the
        recording thread, unless told to wait, the marking (a delete of the rows marked: off
        the loop's path) goes to that thread and the commit follows once it is done."""
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
                self.log_pool = feature_log_pool(process=self.settings.log_process)
        # Not waited for while consuming: a commit lost is a replay, found scored.
        self.commit(done.messages, wait)

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

    def stop(self) -> None:
        """Finish what was recorded (the log write, the marks, the commit), then let go of the
        recording thread (and its database connection) and the log worker."""
        from django.db import connections

        try:
            self.flush()
        finally:
            recorder, self._recorder = self._recorder, None
            if recorder is not None:
                recorder.submit(connections.close_all).result()
                recorder.shutdown()
            self.log_pool.shutdown()
