"""Chargebacks the card processor files against payments: recorded once and published as
``labels.chargeback_filed.v1``, the label the learning loop waits for."""

from __future__ import annotations

import re
import uuid
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from events.contracts import ChargebackFiled
from events.outbox import outbox_publish
from rideshare.errors import InvalidInput, UnknownPayment
from rideshare.models import Chargeback, Payment

# Visa's dispute categories 10 (fraud) to 13 (consumer disputes), e.g. 10.4; Mastercard's
# four-digit message reason codes for chargebacks.
VISA_REASON = re.compile(r"^1[0-3]\.[0-9]{1,2}$")
MASTERCARD_REASONS = frozenset(
    {
        "4808", "4812", "4831", "4834", "4837", "4840", "4841", "4842", "4846", "4849",
        "4853", "4854", "4855", "4859", "4860", "4863", "4870", "4871",
    }
)  # fmt: skip


def chargeback_file(
    *,
    processor_ref: str,
    payment_id: str,
    reason_code: str,
    amount_cents: int,
    filed_at: datetime,
    now: datetime | None = None,
) -> tuple[Chargeback, bool]:
    """Record the processor's chargeback ``processor_ref`` against payment ``payment_id`` and
    publish ``labels.chargeback_filed.v1``; return it and whether it is new. Idempotent on
    ``processor_ref``: filed again, the first record is returned and nothing is published.
    Raise ``UnknownPayment`` (no such payment) or ``InvalidInput`` (a reason code that is no
    card network's, an amount of nothing or more than was captured, a date in the future or
    before the payment); nothing is written then."""
    now = now or timezone.now()
    known = Chargeback.objects.filter(processor_ref=processor_ref).first()
    if known is not None:
        return known, False
    try:
        public_id = uuid.UUID(payment_id)
    except ValueError:
        raise UnknownPayment(f"No payment {payment_id}.") from None
    payment = (
        Payment.objects.select_related("trip", "card", "rider").filter(public_id=public_id).first()
    )
    if payment is None:
        raise UnknownPayment(f"No payment {payment_id}.")
    errors = {}
    if not (VISA_REASON.match(reason_code) or reason_code in MASTERCARD_REASONS):
        errors["reason_code"] = (
            f"{reason_code!r} is not a card network reason code (Visa 10.x-13.x such as 10.4, "
            "or a Mastercard code such as 4837)."
        )
    if not 0 < amount_cents <= payment.captured_cents:
        errors["amount_cents"] = (
            f"A chargeback takes between 1 and the {payment.captured_cents} cents captured."
        )
    if filed_at > now:
        errors["filed_at"] = "A chargeback cannot be filed in the future."
    elif filed_at < payment.created_at:
        errors["filed_at"] = "A chargeback cannot be filed before the payment."
    if errors:
        raise InvalidInput(errors)
    try:
        with transaction.atomic():
            chargeback = Chargeback.objects.create(
                payment=payment,
                processor_ref=processor_ref,
                reason_code=reason_code,
                amount_cents=amount_cents,
                filed_at=filed_at,
                received_at=now,
            )
            trip = payment.trip
            outbox_publish(
                ChargebackFiled(
                    chargeback_id=processor_ref,
                    payment_id=str(payment.public_id),
                    card_id=str(payment.card.public_id),
                    rider_id=str(payment.rider.public_id),
                    amount_cents=amount_cents,
                    reason_code=reason_code,
                    trip_id=str(trip.public_id),
                    driver_id=str(trip.driver.public_id) if trip.driver_id else None,
                    pickup_zone=trip.pickup_zone,
                    filed_at=filed_at,
                    occurred_at=now,
                )
            )
    except IntegrityError:
        # The same chargeback filed twice at once: the other request recorded it.
        return Chargeback.objects.get(processor_ref=processor_ref), False
    return chargeback, True
