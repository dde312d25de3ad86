"""Celery tasks of the simulator (queue ``default``)."""

from __future__ import annotations

from celery import shared_task

from simulator import services


@shared_task(name="simulator.run", ignore_result=True)
def simulation_run(run_id: int) -> None:
    """Run the queued simulation ``run_id`` (a bounded load run); a redelivery is a no-op."""
    services.simulation_execute(run_id=run_id)
