"""Celery tasks of the ml room (``ml.tasks.train_*`` run on the ``training`` queue); each builds
its inputs and calls one service."""

from __future__ import annotations

from celery import shared_task

from features.store import FeatureConfig
from ml.models import ModelVersion
from ml.services import (
    bandit_update,
    canaries_check,
    champion_check,
    model_train_from_logs,
    shadows_check,
    training_run,
    triggers_check,
)


@shared_task(name="ml.tasks.train_from_logs", ignore_result=True)
def train_from_logs(parent_version: str | None = None) -> str:
    """Train a model on the logged features joined with their labels, warm-started from
    ``parent_version`` (default: the champion); return the registered version. Not deployed.
    Safe to repeat: the same logs and labels register the same version."""
    parent = (
        ModelVersion.objects.get(version=parent_version) if parent_version is not None else None
    )
    model = model_train_from_logs(config=FeatureConfig.from_settings(), parent=parent)
    return model.version


@shared_task(
    name="ml.tasks.train_run",
    ignore_result=True,
    acks_late=True,
    reject_on_worker_lost=True,
)
def train_run(request_key: str) -> str | None:
    """Run the training asked for under ``request_key`` (``ml.services.training_request``);
    return the registered version. Acknowledged only once done, and handed out again when its
    worker dies: the run's key makes the second delivery finish the same model version."""
    run = training_run(request_key=request_key)
    return run.model.version if run.model is not None else None


@shared_task(name="ml.triggers_check", ignore_result=True)
def triggers_check_task() -> int:
    """Evaluate the learning loop's triggers now (Celery beat); return how many fired."""
    return len(triggers_check())


@shared_task(name="ml.bandit_update", ignore_result=True)
def bandit_update_task() -> str | None:
    """Update the running bandit's shares, or promote its winner (Celery beat); return its
    status, ``None`` when none runs. Safe to repeat: each update reads the evidence again."""
    experiment = bandit_update()
    return experiment.status if experiment is not None else None


@shared_task(name="ml.canaries_check", ignore_result=True)
def canaries_check_task() -> int:
    """Roll back each canary that breached a guardrail (or decide it on outcomes), roll the
    champion back to its predecessor when it fell below its floor, move each shadow no worse
    than the champion to canary when that is switched on (Celery beat); return how many
    changes were recorded."""
    return len(canaries_check()) + len(champion_check()) + len(shadows_check())
