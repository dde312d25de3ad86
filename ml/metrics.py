"""The learning loop's metrics, served by the process that runs its tasks (the Celery worker,
``events.telemetry``):

- ``ml_training_seconds{checkpoint,kind,outcome}``: each training run's wall time, by its
  outcome (``registered``, ``failed``);
- ``ml_drift_psi{feature}``: the population stability index of each input of the champion
  against its reference, as the last trigger check measured it;
- ``ml_bandit_evidence{arm,evidence}``: the running bandit's evidence per arm (``flagged``,
  ``approved``, ``flag_right``, ``flag_wrong``, ``approval_right``, ``approval_wrong``): its
  posteriors are Beta(1 + right, 1 + wrong) on each decision's reward rate and Beta(1 +
  flagged, 1 + approved) on the flagged share (``ml.bandit.Arm``);
- ``ml_bandit_chance_best{arm}``, ``ml_bandit_share{arm}``: each arm's chance of being the best
  and its share of the traffic after the last update.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import Gauge, Histogram

TRAINING_SECONDS = Histogram(
    "ml_training_seconds",
    "Wall time of each training run, by outcome.",
    ["checkpoint", "kind", "outcome"],
    buckets=(1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600),
)
DRIFT_PSI = Gauge(
    "ml_drift_psi",
    "Population stability index of each model input against the champion's reference.",
    ["feature"],
    multiprocess_mode="mostrecent",
)
BANDIT_EVIDENCE = Gauge(
    "ml_bandit_evidence",
    "The running bandit's evidence per arm; its posteriors are Beta(1 + right, 1 + wrong).",
    ["arm", "evidence"],
    multiprocess_mode="mostrecent",
)
BANDIT_CHANCE_BEST = Gauge(
    "ml_bandit_chance_best",
    "Each bandit arm's chance of being the best after the last update.",
    ["arm"],
    multiprocess_mode="mostrecent",
)
BANDIT_SHARE = Gauge(
    "ml_bandit_share",
    "Each bandit arm's share of the traffic after the last update.",
    ["arm"],
    multiprocess_mode="mostrecent",
)
EVIDENCE = ("flagged", "approved", "flag_right", "flag_wrong", "approval_right", "approval_wrong")


def drift_measured(psi: Mapping[str, float]) -> None:
    """Set each input's PSI as a trigger check measured it."""
    for feature, value in psi.items():
        DRIFT_PSI.labels(feature).set(value)


def bandit_measured(arms: Iterable) -> None:
    """Set the bandit's figures from its arms' rows (``ml.models.ExperimentArm``) as saved."""
    for arm in arms:
        for evidence in EVIDENCE:
            BANDIT_EVIDENCE.labels(arm.model_version, evidence).set(getattr(arm, evidence))
        BANDIT_CHANCE_BEST.labels(arm.model_version).set(arm.chance_best)
        BANDIT_SHARE.labels(arm.model_version).set(arm.share)
