"""The scorer's sweep: scores left unlogged (a failed log write or publish, a crash between the
record and the flush) logged and published again."""

from __future__ import annotations

import logging
import time

from django.utils import timezone

from events.streaming import Publisher
from features.store import FeatureConfig
from fraud.scorer.settings import CONSUMER, UNLOGGED_AFTER, ScorerStats
from fraud.services import scores_log_sweep

log = logging.getLogger(__name__)


class LogSweep:
    """Logs the scores left unlogged for ``UNLOGGED_AFTER``, at most every ``every_s``
    seconds; rows another scorer is logging are skipped."""

    def __init__(self, *, config: FeatureConfig, every_s: float, stats: ScorerStats):
        self.config = config
        self.every_s = every_s
        self.stats = stats
        self._swept = time.monotonic()

    def maybe_run(self, *, publisher: Publisher, topic: str) -> None:
        """Sweep if ``every_s`` passed since the last sweep; verdicts go to ``topic``."""
        now = time.monotonic()
        if now - self._swept < self.every_s:
            return
        self._swept = now
        try:
            self.stats.logged += scores_log_sweep(
                config=self.config,
                producer=publisher.producer(),
                topic=topic,
                scored_before=timezone.now() - UNLOGGED_AFTER,
            )
        except Exception:
            self.stats.log_failures += 1
            log.exception("%s: feature log sweep failed; it will retry", CONSUMER)
