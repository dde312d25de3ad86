"""Writes of the fraud room, one module per subject: model deployments, scores (with their
shadow scores, review items, events and feature log marks) and analysts' reviews."""

from fraud.services.deployments import DeploymentInvalid, deployment_set, deployments_lock
from fraud.services.scores import (
    Recorded,
    ScoreDraft,
    log_items,
    scored_event,
    scored_event_id,
    scores_log_sweep,
    scores_mark_logged,
    scores_record,
    scores_rescore,
)

__all__ = [
    "DeploymentInvalid",
    "Recorded",
    "ScoreDraft",
    "deployment_set",
    "deployments_lock",
    "log_items",
    "scored_event",
    "scored_event_id",
    "scores_log_sweep",
    "scores_mark_logged",
    "scores_record",
    "scores_rescore",
]
