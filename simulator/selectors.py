"""Reads of the simulator's record."""

from __future__ import annotations

from django.db.models import QuerySet

from simulator.engine import PAYMENT_TOPICS
from simulator.models import GroundTruth, SimulationRun


def simulation_runs(*, limit: int = 50) -> list[SimulationRun]:
    """Return the latest runs, newest first."""
    return list(SimulationRun.objects.select_related("created_by")[:limit])


def simulation_stop_requested(*, run_id: int) -> bool:
    """Return whether someone asked run ``run_id`` to stop."""
    return SimulationRun.objects.filter(pk=run_id, stop_requested=True).exists()


def ground_truth_of_run(*, run_id: int) -> QuerySet[GroundTruth]:
    return GroundTruth.objects.filter(run_id=run_id).order_by("occurred_at", "id")


def payments_truth(*, payment_ids: list[str]) -> dict[str, bool]:
    """Return ``{payment_id: is_fraud}`` for the payments among ``payment_ids`` the simulator
    sent (its other payments and everyone else's are absent)."""
    rows = GroundTruth.objects.filter(payment_id__in=payment_ids, topic__in=PAYMENT_TOPICS)
    return dict(rows.values_list("payment_id", "is_fraud"))
