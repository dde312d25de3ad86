"""Booking a ride: the map page, the upfront fare (a quote) and the request itself."""

from __future__ import annotations

from collections.abc import Sequence

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from rideshare import selectors, services
from rideshare.city import LatLng
from rideshare.errors import CardDeclined, InvalidInput
from rideshare.models import Quote, Rider
from rideshare.web.access import rider_required
from rideshare.web.devices import rider_context
from rideshare.web.forms import QuoteForm, TripRequestForm
from rideshare.web.htmx import redirect_page

QUOTE_FRAGMENT = "rideshare/_quote.html"

# What the processor's decline codes mean for the rider.
DECLINE_REASONS = {
    "card_declined": "the card's bank declined the payment",
    "insufficient_funds": "there are not enough funds on the card",
}


@require_GET
@rider_required
def book(request: HttpRequest, *, rider: Rider) -> HttpResponse:
    """Show the city map on which the rider picks a pickup and a drop-off."""
    has_cards = selectors.cards_of_rider(rider=rider, active_only=True).exists()
    return render(request, "rideshare/book.html", {"has_cards": has_cards})


def _quote_fragment(
    request: HttpRequest,
    rider: Rider,
    *,
    quote: Quote | None = None,
    errors: Sequence[str] = (),
    requote: bool = False,
) -> HttpResponse:
    context = {
        "quote": quote,
        "errors": errors,
        "requote": requote,
        "cards": selectors.cards_of_rider(rider=rider, active_only=True),
    }
    return render(request, QUOTE_FRAGMENT, context)


@require_POST
@rider_required
def quote(request: HttpRequest, *, rider: Rider) -> HttpResponse:
    """Price the ride between the two points set on the map (an htmx fragment)."""
    form = QuoteForm(request.POST)
    if not form.is_valid():
        return _quote_fragment(request, rider, errors=["Set a pickup and a drop-off on the map."])
    data = form.cleaned_data
    pickup = LatLng(data["pickup_lat"], data["pickup_lng"])
    dropoff = LatLng(data["dropoff_lat"], data["dropoff_lng"])
    try:
        new_quote = services.trip_quote(
            rider=rider,
            pickup=pickup,
            dropoff=dropoff,
            context=rider_context(request, lat=pickup.lat, lng=pickup.lng),
        )
    except InvalidInput as exc:
        return _quote_fragment(request, rider, errors=list(exc.errors.values()))
    return _quote_fragment(request, rider, quote=new_quote)


@require_POST
@rider_required
def trip_request(request: HttpRequest, *, rider: Rider) -> HttpResponse:
    """Book the quoted ride on the chosen card, then go to the trip's page.

    A declined card or an expired quote answers the quote fragment again with the reason; a
    declined quote stays usable with another card.
    """
    form = TripRequestForm(request.POST)
    if not form.is_valid():
        return _quote_fragment(request, rider, errors=["Choose a card to pay with."])
    quote = get_object_or_404(
        selectors.quotes_of_rider(rider=rider), public_id=form.cleaned_data["quote_id"]
    )
    card = get_object_or_404(
        selectors.cards_of_rider(rider=rider), public_id=form.cleaned_data["card_id"]
    )
    try:
        trip = services.trip_request(
            rider=rider,
            card=card,
            quote=quote,
            context=rider_context(request, lat=quote.pickup_lat, lng=quote.pickup_lng),
        )
    except CardDeclined as exc:
        reason = DECLINE_REASONS.get(exc.decline_code, exc.decline_code.replace("_", " "))
        message = (
            f"Your {card.brand} card ending {card.last4} was declined: {reason} "
            f"({exc.decline_code}). Choose another card."
        )
        return _quote_fragment(request, rider, quote=quote, errors=[message])
    except InvalidInput as exc:
        # An expired or used quote cannot be booked: offer a new fare for the same points.
        usable = "quote_id" not in exc.errors
        return _quote_fragment(
            request,
            rider,
            quote=quote if usable else None,
            errors=list(exc.errors.values()),
            requote=not usable,
        )
    return redirect_page(request, reverse("trip", args=[trip.public_id]))
