"""Payments: authorisation when a trip is requested, capture, void and staff refunds."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import transaction
from django.utils import timezone

from events.contracts import (
    PaymentAuthorized,
    PaymentCaptured,
    PaymentCaptureRequested,
    PaymentDeclined,
    PaymentRefunded,
    Place,
    RiderContext,
)
from events.outbox import outbox_publish
from rideshare import processor
from rideshare.errors import NotPermitted, PaymentStateError
from rideshare.models import Card, Payment, Trip

REFUND_REASON_MAX = 64
# Analysts' review outcomes that give the money back (``Payment.review_outcome``).
REFUSED = frozenset({"legitimate", "refunded_as_fraud", "confirmed_fraud"})


def payment_authorize(*, trip: Trip, card: Card, context: RiderContext, now: datetime) -> Payment:
    """Hold the trip's fare on ``card`` and record the outcome as a payment.

    Publish ``payments.authorized.v1`` (with the trip's planned ``distance_km``) or, when the
    processor declines, ``payments.declined.v1`` (the payment is then ``declined`` with the
    processor's ``decline_code``). Run inside the trip request's transaction.
    """
    result = processor.authorize(token=card.processor_token, amount_cents=trip.fare_cents)
    payment = Payment.objects.create(
        trip=trip,
        rider=trip.rider,
        card=card,
        amount_cents=trip.fare_cents,
        currency=trip.currency,
        status=Payment.Status.AUTHORIZED if result.approved else Payment.Status.DECLINED,
        auth_code=result.auth_code,
        decline_code=result.decline_code,
        created_at=now,
        updated_at=now,
        device_id=context.device_id,
        ip=context.ip,
    )
    common = {
        **_event_ids(payment),
        "amount_cents": payment.amount_cents,
        "context": context,
        "occurred_at": now,
    }
    if result.approved:
        outbox_publish(PaymentAuthorized(**_trip_fields(trip, card), **common))
    else:
        outbox_publish(
            PaymentDeclined(
                decline_code=result.decline_code, card_fingerprint=card.fingerprint, **common
            )
        )
    return payment


def _trip_fields(trip: Trip, card: Card) -> dict[str, Any]:
    """Return what a checkpoint's payment event (``CheckpointPayment``) tells of the trip and
    the card beyond the ids: where it goes, how far, and what an analyst knows the card by."""
    return {
        "card_fingerprint": card.fingerprint,
        "pickup_zone": trip.pickup_zone,
        "distance_km": trip.distance_km,
        "card_brand": card.brand,
        "card_last4": card.last4,
        "pickup": Place(lat=trip.pickup_lat, lng=trip.pickup_lng, zone=trip.pickup_zone),
        "dropoff": Place(lat=trip.dropoff_lat, lng=trip.dropoff_lng, zone=trip.dropoff_zone),
    }


def _event_ids(payment: Payment) -> dict[str, str]:
    """Return the fields every payment event takes from the payment row (``PaymentEvent``)."""
    return {
        "payment_id": str(payment.public_id),
        "trip_id": str(payment.trip.public_id),
        "rider_id": str(payment.rider.public_id),
        "card_id": str(payment.card.public_id),
        "currency": payment.currency,
    }


def _locked(payment: Payment) -> Payment:
    # Lock the payment row only: the trip and rider rows are the trip services' to lock.
    return (
        Payment.objects.select_for_update(of=("self",))
        .select_related("trip", "rider", "card")
        .get(pk=payment.pk)
    )


@transaction.atomic
def payment_capture(*, payment: Payment, amount_cents: int, now: datetime) -> Payment:
    """Capture ``amount_cents`` of an authorised payment, releasing the rest of the hold.

    Publish ``payments.captured.v1``. Raise ``PaymentStateError`` unless the payment is
    authorised and the amount is positive and at most the amount held.
    """
    payment = _locked(payment)
    if payment.status != Payment.Status.AUTHORIZED:
        raise PaymentStateError(
            f"Cannot capture payment {payment.public_id}: it is {payment.status}."
        )
    if not 0 < amount_cents <= payment.amount_cents:
        raise PaymentStateError(
            f"Cannot capture {amount_cents} cents of the {payment.amount_cents} authorised."
        )
    processor.capture(auth_code=payment.auth_code, amount_cents=amount_cents)
    payment.captured_cents = amount_cents
    payment.status = Payment.Status.CAPTURED
    payment.updated_at = now
    payment.save(update_fields=["captured_cents", "status", "updated_at"])
    outbox_publish(
        PaymentCaptured(**_event_ids(payment), amount_cents=amount_cents, occurred_at=now)
    )
    return payment


@transaction.atomic
def payment_void(*, payment: Payment, now: datetime) -> Payment:
    """Release the whole hold of an authorised payment.

    Publishes nothing: no topic exists for voids (the trip's cancellation event says why).
    """
    payment = _locked(payment)
    if payment.status != Payment.Status.AUTHORIZED:
        raise PaymentStateError(f"Cannot void payment {payment.public_id}: it is {payment.status}.")
    processor.void(auth_code=payment.auth_code)
    payment.status = Payment.Status.VOIDED
    payment.updated_at = now
    payment.save(update_fields=["status", "updated_at"])
    return payment


def payment_refund(
    *,
    payment: Payment,
    refunded_by: AbstractUser,
    reason: str,
    amount_cents: int | None = None,
    now: datetime | None = None,
) -> Payment:
    """Refund ``amount_cents`` (default: all that is left) of a captured payment. Staff only.

    Refunds add up to at most the captured amount; the payment becomes ``refunded`` when
    nothing is left. Publish ``payments.refunded.v1``. Raise ``NotPermitted`` for a non-staff
    user and ``PaymentStateError`` when the payment or amount does not allow it.
    """
    now = now or timezone.now()
    if not refunded_by.is_staff:
        raise NotPermitted("Only staff may refund a payment.")
    reason = reason.strip()[:REFUND_REASON_MAX] or "unspecified"
    with transaction.atomic():
        return _refund(_locked(payment), amount_cents=amount_cents, reason=reason, now=now)


def _refund(payment: Payment, *, amount_cents: int | None, reason: str, now: datetime) -> Payment:
    """Refund ``amount_cents`` (None: all that is left) of the locked, captured ``payment``;
    publish ``payments.refunded.v1``."""
    left = payment.captured_cents - payment.refunded_cents
    if payment.status != Payment.Status.CAPTURED:
        raise PaymentStateError(
            f"Cannot refund payment {payment.public_id}: it is {payment.status}."
        )
    amount = left if amount_cents is None else amount_cents
    if not 0 < amount <= left:
        raise PaymentStateError(f"Cannot refund {amount} cents: {left} cents are refundable.")
    processor.refund(auth_code=payment.auth_code, amount_cents=amount)
    payment.refunded_cents += amount
    if payment.refunded_cents == payment.captured_cents:
        payment.status = Payment.Status.REFUNDED
    payment.updated_at = now
    payment.save(update_fields=["refunded_cents", "status", "updated_at"])
    outbox_publish(
        PaymentRefunded(**_event_ids(payment), amount_cents=amount, reason=reason, occurred_at=now)
    )
    return payment


@transaction.atomic
def payment_settle_at_completion(*, payment: Payment, amount_cents: int, now: datetime) -> Payment:
    """Settle an authorised payment as its trip completes: capture ``amount_cents``, unless
    it is held for an analyst's review (it stays authorised until the review is decided,
    ``rideshare.services.verdicts``) or analysts already refused it (the hold is voided).

    With the capture checkpoint on (``RIDESHARE_CAPTURE_WAIT_SECONDS`` > 0) the fare is not
    captured yet: ``payments.capture_requested.v1`` asks for the checkpoint's verdict, which
    captures, holds or voids (``payment_capture_verdict_apply``); without one by
    ``capture_due_at`` it is captured all the same (``verdicts.captures_overdue_settle``): a fraud
    check that is down must not keep drivers' fares.

    Publish ``payments.captured.v1`` when captured.
    """
    payment = _locked(payment)
    if payment.review_outcome in REFUSED:
        return payment_void(payment=payment, now=now)
    if payment.capture_held:
        return payment
    wait_s = settings.RIDESHARE_CAPTURE_WAIT_SECONDS
    if wait_s <= 0:
        return payment_capture(payment=payment, amount_cents=amount_cents, now=now)
    payment.capture_due_at = now + timedelta(seconds=wait_s)
    payment.updated_at = now
    payment.save(update_fields=["capture_due_at", "updated_at"])
    trip = payment.trip
    outbox_publish(
        PaymentCaptureRequested(
            **_event_ids(payment),
            **_trip_fields(trip, payment.card),
            amount_cents=amount_cents,
            context=RiderContext(device_id=payment.device_id, ip=payment.ip),
            driver_id=str(trip.driver.public_id),
            occurred_at=now,
        )
    )
    return payment


def payment_capture_due(*, payment: Payment, now: datetime) -> Payment:
    """Capture the trip's fare from the locked ``payment`` once its capture checkpoint's verdict
    is overdue (``capture_due_at`` passed with none read), unless it was held, refused or
    settled meanwhile. Run inside the caller's transaction."""
    if (
        payment.status != Payment.Status.AUTHORIZED
        or payment.capture_due_at is None
        or payment.capture_due_at > now
        or payment.capture_decision
        or payment.capture_held
        or payment.review_outcome
    ):
        return payment
    return payment_capture(payment=payment, amount_cents=payment.trip.fare_cents, now=now)


def payment_refuse(*, payment: Payment, reason: str, now: datetime) -> Payment:
    """Give back what the locked ``payment`` holds or took: void an authorisation, refund what
    was captured and not yet refunded (``payments.refunded.v1`` with ``reason``); a voided,
    declined or refunded payment is left as it is. Run inside the caller's transaction."""
    if payment.status == Payment.Status.AUTHORIZED:
        return payment_void(payment=payment, now=now)
    if (
        payment.status == Payment.Status.CAPTURED
        and payment.captured_cents > payment.refunded_cents
    ):
        return _refund(payment, amount_cents=None, reason=reason, now=now)
    return payment
