"""Celery as it runs in production: the project's Celery app through a real Redis broker to a
real worker process. Training tasks go to the ``training`` queue and nothing else does; a
worker killed with -9 in the middle of a task has it run again by the next worker, once
(tasks are acknowledged late, and the broker hands out again what stays unacknowledged past
``CELERY_VISIBILITY_TIMEOUT_SECONDS``).

Observed, not relied on: with this Celery (5.7) and kombu's Redis transport a solo worker's
task stayed unacknowledged while it ran even with early acknowledgement switched on, so this
test passes either way; acks_late is what makes the redelivery a contract rather than a
circumstance."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery

from tests.ml.logs import logs_with_labels
from tests.polling import wait_for
from tests.processes import (
    ROOT,
    database_env,
    features_env,
    kill9,
    manage_env,
    manage_stop,
    redis_database,
)

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# The broker's database on the test Redis: this test's own, emptied before and after.
BROKER_DB = 7
VISIBILITY_S = 3.0


@pytest.fixture
def broker(redis_url) -> Iterator[str]:
    with redis_database(redis_url, BROKER_DB) as url:
        yield url


def _app(broker_url: str) -> Celery:
    """The project's Celery configuration (routes, acks_late), on ``broker_url``."""
    app = Celery(f"rideshare-test-{uuid.uuid4().hex[:6]}")
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.broker_url = broker_url
    app.conf.broker_transport_options = {"visibility_timeout": VISIBILITY_S}
    return app


def _worker(
    broker_url: str, log: Path, queues: str = "default", **variables: str
) -> subprocess.Popen:
    env = manage_env(
        **database_env(),
        CELERY_BROKER_URL=broker_url,
        CELERY_VISIBILITY_TIMEOUT_SECONDS=str(VISIBILITY_S),
        **variables,
    )
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queues,
                "--pool", "solo", "-I", "tests.celery_tasks", "--without-heartbeat",
                "--without-gossip", "--without-mingle", "--loglevel", "INFO",
            ],
            cwd=ROOT, env=env, stdout=out, stderr=out,
        )  # fmt: skip


def test_training_goes_to_its_queue_and_a_task_runs_on_a_worker(broker, tmp_path):
    app = _app(broker)
    client = redis.Redis.from_url(broker)

    # No worker on the training queue: the task waits in its list on the broker.
    app.send_task("ml.tasks.train_from_logs")
    app.send_task("fraud.rescore_degraded")
    assert client.llen("training") == 1
    assert client.llen("default") == 1
    client.delete("default")

    trace = tmp_path / "trace.txt"
    worker = _worker(broker, tmp_path / "worker.log")
    try:
        app.send_task("tests.note", args=[str(trace), "ran"])
        assert wait_for(trace.exists, 60), (tmp_path / "worker.log").read_text()[-3000:]
    finally:
        manage_stop(worker, tmp_path / "worker.log")

    assert trace.read_text() == "ran\n"
    # The worker of the default queue left the training task alone.
    assert client.llen("training") == 1


def test_a_worker_killed_mid_task_has_it_run_again_once(broker, tmp_path):
    app = _app(broker)
    trace = tmp_path / "trace.txt"
    log = tmp_path / "worker.log"
    app.send_task("tests.slow_the_first_time", args=[str(trace), 120.0])

    first = _worker(broker, log)
    try:
        assert wait_for(lambda: trace.exists() and "started" in trace.read_text(), 60), (
            log.read_text()[-3000:]
        )
        # Running, and not acknowledged yet: the broker still holds it.
        assert redis.Redis.from_url(broker).hlen("unacked") == 1
        kill9(first)
    finally:
        manage_stop(first, log)
    assert trace.read_text() == "started\n"

    second = _worker(broker, log)
    try:
        # Not acknowledged when its worker died: handed out again past the visibility timeout.
        assert wait_for(lambda: "done" in trace.read_text(), 60), log.read_text()[-3000:]
        # Done once acknowledged: nothing hands it out a third time.
        wait_for(lambda: trace.read_text().count("started") > 2, 3 * VISIBILITY_S)
    finally:
        manage_stop(second, log)

    assert trace.read_text() == "started\nstarted\ndone\n"


def test_a_training_whose_worker_is_killed_registers_one_model_after_redelivery(
    broker, tmp_path, app_store, settings, monkeypatch
):
    from ml import services
    from ml.models import ModelVersion, TrainingRun
    from ml.services import training

    # Random values: every tree keeps splitting, so the training lasts seconds, long enough
    # to be killed in.
    logs_with_labels(app_store, 2000, noisy=True)
    models = tmp_path / "models"
    settings.ML_MODELS_DIR = models
    monkeypatch.setattr(training, "current_app", _app(broker))  # training_request's queue
    run, created = services.training_request(kind="full", request_key="killed-once")
    assert created
    assert redis.Redis.from_url(broker).llen("training") == 1

    log = tmp_path / "worker.log"
    variables = {
        **features_env(app_store),
        "ML_MODELS_DIR": str(models),
        "ML_FULL_ROUNDS": "6000",
    }
    first = _worker(broker, log, "training", **variables)

    def training() -> bool:
        run.refresh_from_db()
        return run.stage == "training" and run.percent >= 20

    try:
        assert wait_for(training, 120), log.read_text()[-3000:]
        kill9(first)
    finally:
        manage_stop(first, log)
    run.refresh_from_db()
    assert (run.status, run.attempts, run.model) == ("running", 1, None)
    assert not ModelVersion.objects.exists()

    second = _worker(broker, log, "training", **variables)
    try:
        assert wait_for(lambda: TrainingRun.objects.get(pk=run.pk).status == "registered", 180), (
            log.read_text()[-3000:]
        )
        # Acknowledged once done: nothing runs it a third time.
        wait_for(lambda: TrainingRun.objects.get(pk=run.pk).attempts > 2, 3 * VISIBILITY_S)
    finally:
        manage_stop(second, log)

    run.refresh_from_db()
    assert (run.attempts, run.percent) == (2, 100)
    assert ModelVersion.objects.count() == 1
    assert run.model == ModelVersion.objects.get()
    assert [p.name for p in models.iterdir()] == [f"{run.model.version}.txt"]
