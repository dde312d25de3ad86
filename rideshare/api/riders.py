"""Endpoints of a rider's account: API tokens and the card wallet."""

from __future__ import annotations

import uuid

from django.contrib.auth import authenticate
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Router, Status
from ninja.errors import AuthenticationError

from frontend.limits import Limit
from rideshare import selectors, services
from rideshare.api.access import rider_of
from rideshare.api.context import rider_context
from rideshare.api.schemas import CardIn, CardOut, ErrorOut, TokenIn, TokenOut, card_out

router = Router(tags=["account"])
# Shared with the trips' endpoints: one count of a rider's bookings.
BOOKING = Limit("RATE_LIMIT_BOOKING", per_user=True)


@router.post(
    "/auth/token",
    auth=None,
    throttle=[Limit("RATE_LIMIT_TOKEN")],
    response={201: TokenOut, 400: ErrorOut, 401: ErrorOut, 422: ErrorOut, 429: ErrorOut},
    summary="Create an API token (log in)",
)
def token_create(request: HttpRequest, payload: TokenIn):
    """Exchange a username and password for a bearer token, shown once.

    Send it as ``Authorization: Bearer <token>``. The ``X-Device-Id`` header is required; for a
    rider this is a login and publishes ``riders.logged_in.v1``.
    """
    context = rider_context(request)
    user = authenticate(
        request, username=payload.username, password=payload.password.get_secret_value()
    )
    if user is None:
        raise AuthenticationError(message="Invalid username or password.")
    return Status(201, {"token": services.api_token_create(user=user, context=context)})


@router.get("/cards", response=list[CardOut], summary="List your cards")
def card_list(request: HttpRequest, include_removed: bool = False):
    """Return your cards, newest first; removed cards only with ``include_removed=true``."""
    rider = rider_of(request)
    cards = selectors.cards_of_rider(rider=rider, active_only=not include_removed)
    return [card_out(card) for card in cards]


@router.post(
    "/cards",
    throttle=[BOOKING],
    response={201: CardOut, 400: ErrorOut, 403: ErrorOut, 422: ErrorOut, 429: ErrorOut},
    summary="Add a card",
)
def card_add(request: HttpRequest, payload: CardIn):
    """Tokenise a card and add it to your wallet. The number is never stored or shown again.

    Publishes ``cards.added.v1``.
    """
    rider = rider_of(request)
    location = payload.location
    context = rider_context(
        request, lat=location.lat if location else None, lng=location.lng if location else None
    )
    card = services.card_add(
        rider=rider,
        number=payload.number.get_secret_value(),
        exp_month=payload.exp_month,
        exp_year=payload.exp_year,
        cvc=payload.cvc.get_secret_value(),
        context=context,
    )
    return Status(201, card_out(card))


@router.get("/cards/{card_id}", response={200: CardOut, 404: ErrorOut}, summary="Show a card")
def card_detail(request: HttpRequest, card_id: uuid.UUID):
    rider = rider_of(request)
    return card_out(get_object_or_404(selectors.cards_of_rider(rider=rider), public_id=card_id))


@router.delete(
    "/cards/{card_id}",
    response={204: None, 400: ErrorOut, 404: ErrorOut},
    summary="Remove a card",
)
def card_remove(request: HttpRequest, card_id: uuid.UUID):
    """Remove a card from your wallet (it stays on the trips that used it)."""
    rider = rider_of(request)
    card = get_object_or_404(selectors.cards_of_rider(rider=rider), public_id=card_id)
    services.card_deactivate(card=card, context=rider_context(request))
    return Status(204, None)
