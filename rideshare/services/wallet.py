"""A rider's payment cards: adding (tokenised through the processor) and removing."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from events.contracts import CardAdded, RiderContext
from events.outbox import outbox_publish
from rideshare import cards, processor
from rideshare.errors import InvalidInput
from rideshare.models import Card, Rider
from rideshare.services.riders import rider_device_record, rider_lock

MIN_EXP_YEAR = 2000
MAX_EXP_YEAR = 2100


@sensitive_variables("number", "digits", "cvc")
def _card_errors(
    *, digits: str, exp_month: int, exp_year: int, cvc: str, now: datetime
) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not cards.is_well_formed(digits):
        errors["number"] = (
            f"Enter the card number: {cards.MIN_DIGITS} to {cards.MAX_DIGITS} digits."
        )
    elif not cards.luhn_valid(digits):
        errors["number"] = "This card number is not valid: check it for a typing mistake."
    if not (cvc.isascii() and cvc.isdigit() and 3 <= len(cvc) <= 4):
        errors["cvc"] = "Enter the 3 or 4 digit security code."
    if not 1 <= exp_month <= 12:
        errors["exp_month"] = "Enter a month from 1 to 12."
    if not MIN_EXP_YEAR <= exp_year <= MAX_EXP_YEAR:
        errors["exp_year"] = f"Enter a four-digit year ({MIN_EXP_YEAR} to {MAX_EXP_YEAR})."
    if not errors and cards.is_expired(exp_month=exp_month, exp_year=exp_year, today=now):
        field = "exp_year" if exp_year < now.year else "exp_month"
        errors[field] = f"This card expired at the end of {exp_month:02d}/{exp_year}."
    return errors


@sensitive_variables("number", "digits", "cvc")
def card_add(
    *,
    rider: Rider,
    number: str,
    exp_month: int,
    exp_year: int,
    cvc: str,
    context: RiderContext,
    now: datetime | None = None,
) -> Card:
    """Tokenise a card through the processor and add it to ``rider``'s wallet.

    The number is Luhn-checked, the expiry must not be past and the CVC must be 3 or 4 digits;
    the CVC is then discarded and the number kept only as brand, last four digits and
    fingerprint. Publish ``cards.added.v1`` (after ``riders.device_changed.v1`` when the device
    is new). Raise ``InvalidInput`` (writing nothing) when a check fails or the rider already
    has this card.
    """
    now = now or timezone.now()
    digits = cards.normalise(number)
    errors = _card_errors(digits=digits, exp_month=exp_month, exp_year=exp_year, cvc=cvc, now=now)
    if errors:
        raise InvalidInput(errors)
    fingerprint = cards.fingerprint(digits, key=settings.SECRET_KEY)
    with transaction.atomic():
        rider = rider_lock(rider)
        rider_device_record(rider=rider, context=context, now=now)
        if rider.cards.filter(fingerprint=fingerprint, is_active=True).exists():
            raise InvalidInput({"number": "This card is already in your wallet."})
        token = processor.tokenise(number=digits, exp_month=exp_month, exp_year=exp_year)
        card = Card.objects.create(
            rider=rider,
            brand=cards.brand_of(digits),
            last4=cards.last4(digits),
            exp_month=exp_month,
            exp_year=exp_year,
            fingerprint=fingerprint,
            processor_token=token,
            added_at=now,
        )
        outbox_publish(
            CardAdded(
                card_id=str(card.public_id),
                rider_id=str(rider.public_id),
                brand=card.brand,
                last4=card.last4,
                exp_month=card.exp_month,
                exp_year=card.exp_year,
                fingerprint=card.fingerprint,
                context=context,
                occurred_at=now,
            )
        )
    return card


def card_deactivate(*, card: Card, context: RiderContext, now: datetime | None = None) -> Card:
    """Remove ``card`` from its rider's wallet (kept, inactive, for the trips that used it).

    Idempotent. No topic exists for removals; publishes only ``riders.device_changed.v1`` when
    the device is new. Trips already authorised on the card are still captured on it.
    """
    now = now or timezone.now()
    with transaction.atomic():
        rider = rider_lock(card.rider)
        rider_device_record(rider=rider, context=context, now=now)
        Card.objects.filter(pk=card.pk).update(is_active=False)
    card.is_active = False
    return card
