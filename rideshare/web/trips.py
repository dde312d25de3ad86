"""A rider's trips: the live trip page, cancelling with the fee warning, history and receipts.

Every lookup goes through the rider's own trips, so another rider's trip is 404 here as in
the API.
"""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from rideshare import selectors, services
from rideshare.errors import CancellationFeeUnconfirmed, IllegalTransition
from rideshare.models import Rider, Trip
from rideshare.routing import trip_socket_path
from rideshare.templatetags.ride_format import money, trip_status
from rideshare.web.access import rider_required
from rideshare.web.devices import rider_context
from rideshare.web.forms import CancelForm
from rideshare.web.htmx import is_htmx, redirect_page
from rideshare.web.trip_state import live_context


def _own_trip(rider: Rider, trip_id: uuid.UUID) -> Trip:
    return get_object_or_404(selectors.trips_of_rider(rider=rider), public_id=trip_id)


@require_GET
@rider_required
def trip_detail(request: HttpRequest, trip_id: uuid.UUID, *, rider: Rider) -> HttpResponse:
    """Show the trip with its live status (the page's script keeps it current)."""
    trip = _own_trip(rider, trip_id)
    return render(
        request,
        "rideshare/trip.html",
        {**live_context(trip), "socket_path": trip_socket_path(str(trip.public_id))},
    )


def _cancel_answer(request: HttpRequest, trip: Trip, *, problem: str = "") -> HttpResponse:
    template = "rideshare/_cancel_confirm.html" if is_htmx(request) else "rideshare/cancel.html"
    context = {
        "trip": trip,
        "preview": selectors.trip_cancellation_preview(trip=trip),
        "problem": problem,
        "fragment": is_htmx(request),
    }
    return render(request, template, context)


@require_http_methods(["GET", "POST"])
@rider_required
def trip_cancel(request: HttpRequest, trip_id: uuid.UUID, *, rider: Rider) -> HttpResponse:
    """GET: show the fee that cancelling would cost now. POST: cancel, confirming that fee.

    A fee that changed since it was shown (the free period ran out meanwhile) is not charged:
    the rider is shown the new fee and asked again.
    """
    trip = _own_trip(rider, trip_id)
    if request.method == "GET":
        return _cancel_answer(request, trip)
    form = CancelForm(request.POST)
    if not form.is_valid():
        return _cancel_answer(request, trip, problem="Confirm the fee shown to cancel.")
    confirmed = form.cleaned_data["confirm_fee_cents"]
    try:
        trip = services.trip_cancel(
            trip=trip, context=rider_context(request), confirm_fee_cents=confirmed
        )
    except CancellationFeeUnconfirmed as exc:
        problem = (
            f"The cancellation fee changed: it is now {money(exc.fee_cents, exc.currency)}, "
            f"not the {money(confirmed, exc.currency)} you confirmed. Nothing was charged; "
            "confirm the new fee to cancel."
        )
        return _cancel_answer(request, trip, problem=problem)
    except IllegalTransition as exc:
        problem = f"This trip can no longer be cancelled: {trip_status(exc.status).lower()}."
        return _cancel_answer(request, trip, problem=problem)
    if trip.cancellation_fee_cents:
        fee = money(trip.cancellation_fee_cents, trip.currency)
        messages.success(request, f"Trip cancelled. A cancellation fee of {fee} was charged.")
    else:
        messages.success(request, "Trip cancelled. Nothing was charged.")
    return redirect_page(request, reverse("trip", args=[trip.public_id]))


@require_GET
@rider_required
def trip_list(request: HttpRequest, *, rider: Rider) -> HttpResponse:
    """List the rider's trips, newest first."""
    trips = selectors.trips_of_rider(rider=rider)
    receipts = set(selectors.receipts_of_rider(rider=rider).values_list("pk", flat=True))
    return render(request, "rideshare/trips.html", {"trips": trips, "receipts": receipts})


@require_GET
@rider_required
def trip_receipt(request: HttpRequest, trip_id: uuid.UUID, *, rider: Rider) -> HttpResponse:
    """Show the receipt of a completed trip, or of a cancellation that was charged a fee."""
    trip = get_object_or_404(selectors.receipts_of_rider(rider=rider), public_id=trip_id)
    return render(request, "rideshare/receipt.html", {"trip": trip, "payment": trip.payment})
