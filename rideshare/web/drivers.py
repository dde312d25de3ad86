"""The driver console: the trips waiting for a driver and the driver's own trip, step by step.

Minimal on purpose: it is what moves a trip along in the demo and in the browser tests.
"""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from rideshare import selectors, services
from rideshare.errors import DomainError
from rideshare.models import Driver
from rideshare.web.access import driver_required

# step in the URL -> (service, what the driver is told when it succeeds)
STEPS = {
    "accept": (services.trip_assign, "Trip accepted: drive to the pickup."),
    "pick-up": (services.trip_pick_up, "Rider picked up: drive to the drop-off."),
    "complete": (services.trip_complete, "Trip completed."),
    "cancel": (services.trip_cancel_by_driver, "Trip given up; the rider was not charged."),
}


@require_GET
@driver_required
def console(request: HttpRequest, *, driver: Driver) -> HttpResponse:
    """Show the driver's trip under way, the trips waiting for a driver and recent trips."""
    board = selectors.driver_board(driver=driver)
    return render(request, "rideshare/driver_console.html", {"driver": driver, "board": board})


@require_GET
@driver_required
def waiting_trips(request: HttpRequest, *, driver: Driver) -> HttpResponse:
    """Return the list of trips waiting for a driver (the console polls it)."""
    board = selectors.driver_board(driver=driver)
    return render(request, "rideshare/_driver_requests.html", {"driver": driver, "board": board})


@require_POST
@driver_required
def step(request: HttpRequest, trip_id: uuid.UUID, step: str, *, driver: Driver) -> HttpResponse:
    """Take one step of a trip (accept, pick up, complete, give up), then show the console."""
    if step not in STEPS:
        raise Http404("No such step.")
    service, done = STEPS[step]
    trip = selectors.trips_for_driver(driver=driver).filter(public_id=trip_id).first()
    if trip is None:
        # Another driver took it (or the rider cancelled) since the console was drawn.
        messages.error(request, "This trip is no longer waiting for a driver.")
        return redirect("driver-console")
    try:
        service(trip=trip, driver=driver)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, done)
    return redirect("driver-console")
