"""Endpoints of drivers: the trips they can take, and the steps of a trip they drive."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Router

from rideshare import selectors, services
from rideshare.api.access import driver_of
from rideshare.api.schemas import ErrorOut, TripOut, trip_out
from rideshare.models import Trip

router = Router(tags=["driver"])

STEP_RESPONSES = {200: TripOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut}


@router.get("/driver/trips", response=list[TripOut], summary="Trips open to you and your trips")
def driver_trip_list(request: HttpRequest):
    """Return the trips waiting for a driver and the trips you were assigned, newest first."""
    driver = driver_of(request)
    return [trip_out(t, for_rider=False) for t in selectors.trips_for_driver(driver=driver)]


def _step(request: HttpRequest, trip_id: uuid.UUID, service: Callable[..., Trip]) -> dict:
    driver = driver_of(request)
    trip = get_object_or_404(selectors.trips_for_driver(driver=driver), public_id=trip_id)
    return trip_out(service(trip=trip, driver=driver), for_rider=False)


@router.post("/driver/trips/{trip_id}/accept", response=STEP_RESPONSES, summary="Accept a trip")
def driver_trip_accept(request: HttpRequest, trip_id: uuid.UUID):
    """Take a requested trip: you are assigned to it (``trips.assigned.v1``)."""
    return _step(request, trip_id, services.trip_assign)


@router.post("/driver/trips/{trip_id}/pick-up", response=STEP_RESPONSES, summary="Pick up")
def driver_trip_pick_up(request: HttpRequest, trip_id: uuid.UUID):
    """Record that you picked the rider up (``trips.started.v1``)."""
    return _step(request, trip_id, services.trip_pick_up)


@router.post("/driver/trips/{trip_id}/complete", response=STEP_RESPONSES, summary="Complete")
def driver_trip_complete(request: HttpRequest, trip_id: uuid.UUID):
    """Drop the rider off, capturing the fare (``trips.completed.v1``, ``payments.captured.v1``)."""
    return _step(request, trip_id, services.trip_complete)


@router.post("/driver/trips/{trip_id}/cancel", response=STEP_RESPONSES, summary="Cancel")
def driver_trip_cancel(request: HttpRequest, trip_id: uuid.UUID):
    """Give up a trip you were assigned; free for the rider (``trips.cancelled.v1``)."""
    return _step(request, trip_id, services.trip_cancel_by_driver)
