"""Writes of the ml room: record labels, train and register models, deploy them, fire triggers,
run bandits.

Every service is importable from here (``from ml.services import model_promote``); each lives in
the module of its subject."""

from ml.services.canary import canaries_check, champion_check, shadows_check
from ml.services.experiments import (
    ExperimentRefused,
    bandit_start,
    bandit_stop,
    bandit_update,
)
from ml.services.gates import model_gate
from ml.services.labels import label_record
from ml.services.registry import (
    ModelRejected,
    model_bootstrap,
    model_promote,
    model_register,
    model_train_from_logs,
)
from ml.services.training import training_request, training_run
from ml.services.triggers import triggers_check

__all__ = [
    "ExperimentRefused",
    "ModelRejected",
    "bandit_start",
    "bandit_stop",
    "bandit_update",
    "canaries_check",
    "champion_check",
    "label_record",
    "model_bootstrap",
    "model_gate",
    "model_promote",
    "model_register",
    "model_train_from_logs",
    "shadows_check",
    "training_request",
    "training_run",
    "triggers_check",
]
