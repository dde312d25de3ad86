"""The rider's wallet: cards shown as brand, last four digits and expiry; add and remove.

A card number reaches the wallet service and nothing else: the form never renders it back
(``UnrenderedTextInput``), error reports mask it (``sensitive_post_parameters``) and no page
or log line shows more than its last four digits.
"""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from rideshare import selectors, services
from rideshare.errors import InvalidInput
from rideshare.models import Rider
from rideshare.web.access import rider_required, safe_next
from rideshare.web.devices import rider_context
from rideshare.web.forms import CardForm, errors_onto


@sensitive_post_parameters("number", "cvc")
@require_http_methods(["GET", "POST"])
@rider_required
def wallet(request: HttpRequest, *, rider: Rider) -> HttpResponse:
    """List the rider's cards; add one (field errors shown on the form, nothing written)."""
    form = CardForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            card = services.card_add(
                rider=rider, context=rider_context(request), **form.cleaned_data
            )
        except InvalidInput as exc:
            errors_onto(form, exc)
        else:
            messages.success(request, f"Added your {card.brand} card ending {card.last4}.")
            return redirect(safe_next(request, reverse("wallet")))
    cards = selectors.cards_of_rider(rider=rider, active_only=True)
    return render(
        request,
        "rideshare/wallet.html",
        {"form": form, "cards": cards, "next": safe_next(request, "")},
    )


@require_POST
@rider_required
def card_remove(request: HttpRequest, card_id: uuid.UUID, *, rider: Rider) -> HttpResponse:
    """Remove one of the rider's cards (trips already paid with it keep it)."""
    card = get_object_or_404(
        selectors.cards_of_rider(rider=rider, active_only=True), public_id=card_id
    )
    services.card_deactivate(card=card, context=rider_context(request))
    messages.success(request, f"Removed the {card.brand} card ending {card.last4}.")
    return redirect("wallet")
