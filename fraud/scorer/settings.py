"""The scorer's settings (``FRAUD_*``) and figures."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta

from events.batching import BatchStats
from features.definitions import FEATURE_SERVICES, FRAUD_CAPTURE_V1, FRAUD_SCORING_V1

CONSUMER = "fraud-scorer"
DEFAULT_GROUP = CONSUMER
# The scorer of the second checkpoint: the fare at the trip's end
# (``payments.capture_requested.v1``).
CAPTURE_CONSUMER = "fraud-capture-scorer"
CAPTURE_SERVICE = FRAUD_CAPTURE_V1.name
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
    # Vectors served exactly as the training join gives them, and the others (degraded ones
    # included): ``features.serving.ServedVector.consistency``.
    exact: int = 0
    stale: int = 0
    poison: int = 0
    logged: int = 0
    log_failures: int = 0
    publish_failures: int = 0


@dataclass(frozen=True)
class ScorerSettings:
    """How the scorer batches, reads and decides (``FRAUD_*`` settings)."""

    max_records: int = 200
    poll_timeout_s: float = 0.05
    threads: int = 1
    feature_timeout_s: float = 0.25
    degraded_review_cents: int = 5000
    deployment_poll_s: float = 2.0
    # How often the lists and rules are checked for changes.
    policy_poll_s: float = 2.0
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
    # ``manage.py consume fraud-scorer`` runs; in-process tests use a thread.
    log_process: bool = False
    # Partitions of the topics the scorer creates: its verdicts and its dead letters.
    topic_partitions: int = 3
    # The feature service it serves; its checkpoint (``FeatureService.checkpoint``) says which
    # payment events the scorer reads and which deployments it runs.
    service: str = FRAUD_SCORING_V1.name
    # How long a batch may wait for the stream processor to apply the events before its
    # payments (``features.stream_serving``); past it the batch is served as the state is,
    # marked stale.
    consistency_wait_s: float = 0.02
    # The stream processor's consumer group, whose progress the scorer checks.
    processor_group: str = "stream-features"
    # The process's GIL switch interval (``sys.setswitchinterval``): how long the scoring
    # thread, its reply from Redis or Kafka in hand, may wait for the recording thread to let
    # go of the interpreter. Python's 5 ms default cost the scorer ~5 % of its throughput
    # draining a backlog (docs/performance.md). None: the default.
    switch_interval_s: float | None = 0.0005

    @classmethod
    def from_settings(cls, **overrides) -> ScorerSettings:
        from django.conf import settings

        base = cls(
            service=authorization_service(),
            max_records=settings.FRAUD_BATCH_MAX,
            threads=settings.FRAUD_MODEL_THREADS,
            feature_timeout_s=settings.FRAUD_FEATURE_TIMEOUT_MS / 1000,
            degraded_review_cents=settings.FRAUD_DEGRADED_REVIEW_CENTS,
            deployment_poll_s=settings.FRAUD_DEPLOYMENT_POLL_SECONDS,
            policy_poll_s=settings.FRAUD_POLICY_POLL_SECONDS,
            explain_all=settings.FRAUD_EXPLAIN_ALL,
            log_flush_s=settings.FRAUD_LOG_FLUSH_SECONDS,
            overlap_min_records=settings.FRAUD_OVERLAP_MIN_RECORDS,
            consistency_wait_s=settings.FRAUD_CONSISTENCY_WAIT_MS / 1000,
            log_process=True,
            topic_partitions=settings.EVENT_TOPIC_PARTITIONS,
        )
        return replace(base, **overrides)


def authorization_service() -> str:
    """Return the authorization checkpoint's feature service (``FRAUD_SERVICE``), checked:
    a declared service of that checkpoint."""
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    name = settings.FRAUD_SERVICE
    declared = FEATURE_SERVICES.get(name)
    if declared is None or declared.checkpoint != "authorization":
        choices = ", ".join(
            s.name for s in FEATURE_SERVICES.values() if s.checkpoint == "authorization"
        )
        raise ImproperlyConfigured(
            f"FRAUD_SERVICE is {name!r}: use an authorization feature service ({choices})."
        )
    return name


def checkpoint_service(checkpoint: str) -> str:
    """Return the feature service ``checkpoint`` scores with: the authorization's is
    ``FRAUD_SERVICE``, the capture's ``fraud_capture_v1``."""
    if checkpoint == "capture":
        return CAPTURE_SERVICE
    if checkpoint == "authorization":
        return authorization_service()
    raise ValueError(f"unknown checkpoint {checkpoint!r}: authorization or capture")
