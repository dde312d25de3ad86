"""A trip's live status as the rider sees it, on the trip page and over the websocket.

One template renders both, so the page a rider loads and the updates pushed to it agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.template.loader import render_to_string

from rideshare import lifecycle, selectors
from rideshare.models import Trip

LIVE_TEMPLATE = "rideshare/_trip_live.html"

# (label, the trip's timestamp of that step), in lifecycle order
STEPS = (
    ("Requested", "requested_at"),
    ("Driver assigned", "assigned_at"),
    ("Picked up", "picked_up_at"),
    ("Arrived", "completed_at"),
)


@dataclass(frozen=True)
class Step:
    label: str
    at: datetime | None
    state: str  # "done", "current" or "todo"


def _steps(trip: Trip) -> list[Step]:
    if trip.status == Trip.Status.PAYMENT_DECLINED:
        return []
    steps = []
    waiting = not lifecycle.is_final(trip.status)
    for label, field in STEPS:
        at = getattr(trip, field)
        if at is not None:
            steps.append(Step(label, at, "done"))
        elif waiting:
            steps.append(Step(label, None, "current"))
            waiting = False
        elif trip.status != Trip.Status.CANCELLED:
            steps.append(Step(label, None, "todo"))
    if trip.status == Trip.Status.CANCELLED:
        steps.append(Step("Cancelled", trip.cancelled_at, "done"))
    return steps


def live_context(trip: Trip, *, now: datetime | None = None) -> dict:
    """Return the template context of ``trip``'s live status panel at ``now``."""
    return {
        "trip": trip,
        "steps": _steps(trip),
        "preview": selectors.trip_cancellation_preview(trip=trip, now=now),
        "has_receipt": selectors.trip_has_receipt(trip=trip),
        # Nothing changes after a final status: the page stops listening.
        "final": lifecycle.is_final(trip.status),
    }


def trip_state_message(trip: Trip) -> dict:
    """Return the websocket message carrying ``trip``'s current state and its rendered panel."""
    return {
        "type": "trip.state",
        "trip_id": str(trip.public_id),
        "status": trip.status,
        "final": lifecycle.is_final(trip.status),
        "html": render_to_string(LIVE_TEMPLATE, live_context(trip)),
    }
