"""The Celery application; configuration comes from Django settings (``CELERY_*``), beat
schedule included, and tasks are discovered in every installed app.

A worker serves its metrics on ``METRICS_PORT`` (``events.telemetry``): beside the rooms' own
(the learning loop's, ``ml.metrics``), ``celery_task_seconds{task,outcome}``, each task's run
time by outcome (``success``, ``failure``, ``retry``). A prefork pool runs tasks in child
processes: give the worker ``PROMETHEUS_MULTIPROC_DIR`` so their figures reach the endpoint.
"""

import os
import time

from celery import Celery, signals
from prometheus_client import Histogram

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("rideshare")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

TASK_SECONDS = Histogram(
    "celery_task_seconds",
    "Run time of each Celery task, by outcome.",
    ["task", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
)
# task id -> when it started, in the process that runs it.
_started: dict[str, float] = {}


@signals.worker_init.connect
def _serve_metrics(**_) -> None:
    from events.telemetry import serve_from_settings

    serve_from_settings()


@signals.task_prerun.connect
def _task_started(task_id=None, **_) -> None:
    _started[task_id] = time.monotonic()


@signals.task_postrun.connect
def _task_finished(task_id=None, task=None, state=None, **_) -> None:
    started = _started.pop(task_id, None)
    if started is not None and task is not None:
        outcome = {"SUCCESS": "success", "RETRY": "retry"}.get(state or "", "failure")
        TASK_SECONDS.labels(task.name, outcome).observe(time.monotonic() - started)
