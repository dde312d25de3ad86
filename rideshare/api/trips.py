"""Endpoints of a rider's trips: quotes, requests, status, cancellation."""

from __future__ import annotations

import uuid

from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Router, Status

from rideshare import selectors, services
from rideshare.api.access import rider_of
from rideshare.api.context import rider_context
from rideshare.api.riders import BOOKING
from rideshare.api.schemas import (
    CancelIn,
    CancellationPreviewOut,
    ErrorOut,
    PointIn,
    QuoteIn,
    QuoteOut,
    TripOut,
    TripRequestIn,
    cancellation_preview_out,
    quote_out,
    trip_out,
)

router = Router(tags=["trips"])


def _where(location: PointIn | None, fallback: PointIn | None) -> dict:
    point = location or fallback
    return {"lat": point.lat, "lng": point.lng} if point else {}


@router.post(
    "/quotes",
    throttle=[BOOKING],
    response={201: QuoteOut, 400: ErrorOut, 403: ErrorOut, 422: ErrorOut, 429: ErrorOut},
    summary="Get a fare quote",
)
def quote_create(request: HttpRequest, payload: QuoteIn):
    """Price a trip; request it with the returned ``id`` before ``expires_at``."""
    rider = rider_of(request)
    context = rider_context(request, **_where(payload.location, payload.pickup))
    quote = services.trip_quote(
        rider=rider,
        pickup=payload.pickup.as_latlng(),
        dropoff=payload.dropoff.as_latlng(),
        context=context,
    )
    return Status(201, quote_out(quote))


@router.post(
    "/trips",
    throttle=[BOOKING],
    response={
        201: TripOut,
        400: ErrorOut,
        402: ErrorOut,
        403: ErrorOut,
        404: ErrorOut,
        422: ErrorOut,
        429: ErrorOut,
    },
    summary="Request a trip",
)
def trip_request(request: HttpRequest, payload: TripRequestIn):
    """Request a trip from a quote (or a pickup and dropoff), paid with one of your cards.

    The fare is authorised on the card now and captured at the end of the trip. A declined
    card answers 402 with the processor's ``decline_code``.
    """
    rider = rider_of(request)
    context = rider_context(request, **_where(payload.location, payload.pickup))
    card = get_object_or_404(selectors.cards_of_rider(rider=rider), public_id=payload.card_id)
    quote = None
    if payload.quote_id is not None:
        quote = get_object_or_404(
            selectors.quotes_of_rider(rider=rider), public_id=payload.quote_id
        )
    trip = services.trip_request(
        rider=rider,
        card=card,
        context=context,
        quote=quote,
        pickup=payload.pickup.as_latlng() if payload.pickup else None,
        dropoff=payload.dropoff.as_latlng() if payload.dropoff else None,
    )
    return Status(201, trip_out(trip))


@router.get("/trips", response=list[TripOut], summary="List your trips")
def trip_list(request: HttpRequest):
    """Return your trips, newest first."""
    rider = rider_of(request)
    return [trip_out(trip) for trip in selectors.trips_of_rider(rider=rider)]


@router.get("/trips/{trip_id}", response={200: TripOut, 404: ErrorOut}, summary="Show a trip")
def trip_detail(request: HttpRequest, trip_id: uuid.UUID):
    rider = rider_of(request)
    return trip_out(get_object_or_404(selectors.trips_of_rider(rider=rider), public_id=trip_id))


@router.get(
    "/trips/{trip_id}/cancellation",
    response={200: CancellationPreviewOut, 404: ErrorOut},
    summary="Preview the cancellation fee",
)
def trip_cancellation_preview(request: HttpRequest, trip_id: uuid.UUID):
    """Return whether you can cancel now and the fee that would apply: show it before cancelling."""
    rider = rider_of(request)
    trip = get_object_or_404(selectors.trips_of_rider(rider=rider), public_id=trip_id)
    return cancellation_preview_out(selectors.trip_cancellation_preview(trip=trip))


@router.post(
    "/trips/{trip_id}/cancel",
    response={200: TripOut, 400: ErrorOut, 404: ErrorOut, 409: ErrorOut, 422: ErrorOut},
    summary="Cancel a trip",
)
def trip_cancel(request: HttpRequest, trip_id: uuid.UUID, payload: CancelIn):
    """Cancel your trip. When a fee applies, ``confirm_fee_cents`` must equal it (409 if not)."""
    rider = rider_of(request)
    trip = get_object_or_404(selectors.trips_of_rider(rider=rider), public_id=trip_id)
    context = rider_context(request, **_where(payload.location, None))
    trip = services.trip_cancel(
        trip=trip, context=context, confirm_fee_cents=payload.confirm_fee_cents
    )
    return trip_out(trip)
