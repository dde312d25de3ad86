"""The scorer: a step of the consumer loop (``step``), its recording and flush (``recording``),
its sweep of scores left unlogged (``sweep``) and its settings (``settings``)."""

from fraud.scorer.settings import CONSUMER, DEFAULT_GROUP, ScorerSettings, ScorerStats
from fraud.scorer.step import Scorer

__all__ = ["CONSUMER", "DEFAULT_GROUP", "Scorer", "ScorerSettings", "ScorerStats"]
