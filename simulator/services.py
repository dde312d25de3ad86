"""Writes of the simulator: runs (start, progress, stop, finish) and their ground truth."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from events.bus import bus_from_settings
from simulator import selectors
from simulator.city import city_from_file
from simulator.config import SimConfig
from simulator.engine import Simulation
from simulator.load import load_publish, topics_ensure
from simulator.models import GroundTruth, SimulationRun
from simulator.report import Stats

log = logging.getLogger(__name__)

# A run started from the web UI is bounded by these.
WEB_MAX_RATE = 5000.0
WEB_MAX_DURATION_S = 3600.0


def simulation_run_create(
    *,
    mode: str,
    params: dict,
    created_by=None,
    status: str = SimulationRun.Status.QUEUED,
) -> SimulationRun:
    """Create a run in ``status`` (a CLI run starts as running, a web run is queued)."""
    now = timezone.now()
    return SimulationRun.objects.create(
        mode=mode,
        params=params,
        created_by=created_by,
        status=status,
        created_at=now,
        started_at=now if status == SimulationRun.Status.RUNNING else None,
    )


def simulation_start(*, params: dict, created_by) -> SimulationRun:
    """Queue a bounded load run; the Celery task ``simulator.run`` starts it after the commit.

    ``params``: ``rate`` (events/s, at most ``WEB_MAX_RATE``), ``duration_s`` (at most
    ``WEB_MAX_DURATION_S``), optional ``topic_prefix`` and ``config`` (``SimConfig.to_json``).
    """
    rate, duration = float(params["rate"]), float(params["duration_s"])
    if not (0 < rate <= WEB_MAX_RATE and 0 < duration <= WEB_MAX_DURATION_S):
        raise ValueError(
            f"a web run needs 0 < rate <= {WEB_MAX_RATE:.0f} and 0 < duration <= "
            f"{WEB_MAX_DURATION_S:.0f} s"
        )
    from simulator.tasks import simulation_run

    with transaction.atomic():
        run = simulation_run_create(
            mode=SimulationRun.Mode.LOAD, params=params, created_by=created_by
        )
        transaction.on_commit(lambda: simulation_run.delay(run.pk))
    return run


def simulation_stop(*, run: SimulationRun) -> SimulationRun:
    """Ask ``run`` to stop: its loop sees ``stop_requested`` within a second; a queued run
    never starts. Idempotent."""
    with transaction.atomic():
        run = SimulationRun.objects.select_for_update().get(pk=run.pk)
        run.stop_requested = True
        fields = ["stop_requested"]
        if run.status == SimulationRun.Status.QUEUED:
            run.status = SimulationRun.Status.STOPPED
            run.finished_at = timezone.now()
            fields += ["status", "finished_at"]
        run.save(update_fields=fields)
    return run


def simulation_progress(*, run_id: int, stats: Stats) -> None:
    """Save the run's counters so far."""
    SimulationRun.objects.filter(pk=run_id).update(
        counters=stats.to_json(), events_published=stats.published, errors=stats.errors
    )


def simulation_finish(
    *, run_id: int, stats: Stats, failed: str = "", now: datetime | None = None
) -> None:
    """Record how the run ended: finished, stopped (on request) or failed with ``failed``."""
    if failed:
        status = SimulationRun.Status.FAILED
    elif stats.stopped:
        status = SimulationRun.Status.STOPPED
    else:
        status = SimulationRun.Status.FINISHED
    SimulationRun.objects.filter(pk=run_id).update(
        status=status,
        counters=stats.to_json(),
        events_published=stats.published,
        errors=stats.errors,
        error_message=failed,
        finished_at=now or timezone.now(),
    )


def ground_truth_record(*, run_id: int | None, rows: list[dict]) -> int:
    """Store ground-truth rows (``engine.truth_row`` dicts); idempotent on ``event_id``."""
    objects = [GroundTruth(run_id=run_id, **row) for row in rows]
    GroundTruth.objects.bulk_create(objects, batch_size=1000, ignore_conflicts=True)
    return len(objects)


class RunHooks:
    """The callbacks a live run's loop calls: ground truth, progress, the stop check.

    The database is read for ``stop_requested`` at most every ``check_every_s`` and counters
    written at most every ``save_every_s``, so neither slows the loop.
    """

    def __init__(
        self, run_id: int, stats: Stats, *, check_every_s: float = 0.5, save_every_s: float = 2.0
    ):
        self.run_id = run_id
        self.stats = stats
        self.check_every_s = check_every_s
        self.save_every_s = save_every_s
        self._checked = 0.0
        self._saved = 0.0
        self._stop = False

    def on_truth(self, rows: list[dict]) -> None:
        ground_truth_record(run_id=self.run_id, rows=rows)

    def should_stop(self) -> bool:
        now = time.monotonic()
        if not self._stop and now - self._checked >= self.check_every_s:
            self._checked = now
            self._stop = selectors.simulation_stop_requested(run_id=self.run_id)
        return self._stop

    def on_progress(self, *args) -> None:
        now = time.monotonic()
        if now - self._saved >= self.save_every_s:
            self._saved = now
            simulation_progress(run_id=self.run_id, stats=self.stats)


@contextmanager
def simulation_record(*, mode: str, params: dict, stats: Stats) -> Iterator[RunHooks]:
    """Record a run started from the command line: a running ``SimulationRun`` whose hooks
    store the ground truth and counters; finished, stopped or failed when the block ends."""
    run = simulation_run_create(mode=mode, params=params, status=SimulationRun.Status.RUNNING)
    try:
        yield RunHooks(run.pk, stats)
    except BaseException as exc:
        stats.finish()
        simulation_finish(run_id=run.pk, stats=stats, failed=f"{type(exc).__name__}: {exc}")
        raise
    simulation_finish(run_id=run.pk, stats=stats)


def simulation_execute(*, run_id: int) -> SimulationRun:
    """Run the queued load run ``run_id`` to its end; idempotent (a run not queued is left).

    Publish its events to the bus from the settings at ``params["rate"]`` for
    ``params["duration_s"]`` (or ``params["count"]`` events), store their ground truth, and
    record the outcome on the run. A failure is recorded on the run, not raised.
    """
    with transaction.atomic():
        run = SimulationRun.objects.select_for_update().get(pk=run_id)
        if run.status != SimulationRun.Status.QUEUED:
            return run
        run.status = SimulationRun.Status.RUNNING
        run.started_at = timezone.now()
        run.save(update_fields=["status", "started_at"])
    params = run.params
    stats = Stats(mode="load", requested_rate=float(params["rate"]))
    hooks = RunHooks(run.pk, stats)
    try:
        config = SimConfig.from_json(params.get("config", {}))
        simulation = Simulation(config, city_from_file())
        bus = bus_from_settings()
        prefix = params.get("topic_prefix", "")
        topics_ensure(bus, prefix=prefix, partitions=settings.EVENT_TOPIC_PARTITIONS)
        load_publish(
            simulation.events(),
            bus=bus,
            rate=float(params["rate"]),
            count=params.get("count"),
            duration_s=params.get("duration_s"),
            topic_prefix=prefix,
            stats=stats,
            on_truth=hooks.on_truth,
            should_stop=hooks.should_stop,
            on_progress=hooks.on_progress,
        )
        stats.pending_labels = simulation.labels_scheduled - simulation.labels_emitted
    except Exception as exc:
        log.exception("simulation run %s failed", run.pk)
        stats.finish()
        simulation_finish(run_id=run.pk, stats=stats, failed=f"{type(exc).__name__}: {exc}")
    else:
        simulation_finish(run_id=run.pk, stats=stats)
    run.refresh_from_db()
    return run
