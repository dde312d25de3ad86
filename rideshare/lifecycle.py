"""The trip lifecycle: which step may start from which status. One table, read by the services
(which refuse illegal steps) and the selectors (which tell the rider what is possible).

    quote -> requested -> driver_assigned -> picked_up -> completed
                 |               |
                 +---------------+--> cancelled (by the rider; by the driver once assigned)
"""

from __future__ import annotations

from rideshare.errors import IllegalTransition
from rideshare.models import Trip

Status = Trip.Status

ASSIGN = "assign a driver"
PICK_UP = "pick up"
COMPLETE = "complete"
RIDER_CANCEL = "cancel (rider)"
DRIVER_CANCEL = "cancel (driver)"

# step -> the statuses it may start from
ALLOWED_FROM: dict[str, frozenset[str]] = {
    ASSIGN: frozenset({Status.REQUESTED}),
    PICK_UP: frozenset({Status.DRIVER_ASSIGNED}),
    COMPLETE: frozenset({Status.PICKED_UP}),
    RIDER_CANCEL: frozenset({Status.REQUESTED, Status.DRIVER_ASSIGNED}),
    DRIVER_CANCEL: frozenset({Status.DRIVER_ASSIGNED}),
}


def allowed(step: str, status: str) -> bool:
    """Return whether ``step`` may start from a trip in ``status``."""
    return status in ALLOWED_FROM[step]


def is_final(status: str) -> bool:
    """Return whether no step may start from ``status`` (the trip is over)."""
    return not any(status in sources for sources in ALLOWED_FROM.values())


def guard(trip: Trip, step: str) -> None:
    """Raise ``IllegalTransition`` unless ``step`` may start from ``trip``'s status."""
    if not allowed(step, trip.status):
        statuses = " or ".join(sorted(ALLOWED_FROM[step]))
        raise IllegalTransition(
            f"Cannot {step}: trip {trip.public_id} is {trip.status}; "
            f"this step needs a trip that is {statuses}.",
            status=trip.status,
        )
