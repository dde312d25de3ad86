"""The scorer's metrics (served on its process's endpoint, ``events.telemetry``), by checkpoint
(``authorization``, ``capture``):

- ``fraud_scoring_latency_seconds``: from a payment's event time to its score recorded, each
  payment scored (the end-to-end latency; the stages of each batch, the online feature read
  (``read``) among them, are ``stream_consumer_stage_seconds`` of the scorer's consumer);
- ``fraud_decisions_total{decision,model,role}``: payments decided, by decision and by the model
  that decided (``role``: champion or canary);
- ``fraud_vectors_total{consistency}``: vectors served, ``exact``, ``stale`` or ``degraded``
  (the feature store did not answer in time): their shares are the rates' ratios.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Sequence

from prometheus_client import Counter, Histogram

from fraud.services import ScoreDraft

SCORING_LATENCY = Histogram(
    "fraud_scoring_latency_seconds",
    "From a payment's event time to its score recorded.",
    ["checkpoint"],
    buckets=(0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DECISIONS = Counter(
    "fraud_decisions",
    "Payments decided, by decision and by the deciding model.",
    ["checkpoint", "decision", "model", "role"],
)
VECTORS = Counter(
    "fraud_vectors",
    "Feature vectors served, by consistency: exact, stale, or degraded (store unavailable).",
    ["checkpoint", "consistency"],
)


class ScorerMetrics:
    """One scorer's figures, its checkpoint's labelled children kept at hand."""

    def __init__(self, checkpoint: str):
        self.checkpoint = checkpoint
        self.latency = SCORING_LATENCY.labels(checkpoint)
        self.vectors = {c: VECTORS.labels(checkpoint, c) for c in ("exact", "stale", "degraded")}

    def served(self, *, exact: int, stale: int, degraded: int) -> None:
        """Count a batch's vectors (``degraded`` ones are not counted as stale too)."""
        for consistency, count in (("exact", exact), ("stale", stale), ("degraded", degraded)):
            if count:
                self.vectors[consistency].inc(count)

    def recorded(self, drafts: Sequence[ScoreDraft]) -> None:
        """Count the payments a batch recorded: their latency and decisions."""
        observe = self.latency.observe
        for draft in drafts:
            observe(draft.latency_ms / 1000)
        tally = Tally((d.scored.decision, d.scored.model_version, d.scored.role) for d in drafts)
        for (decision, model, role), count in tally.items():
            DECISIONS.labels(self.checkpoint, decision, model, role).inc(count)
