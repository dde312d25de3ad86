"""Acting on fraud verdicts the booking reads from the stream: the scorer's
(``fraud.scored.v1``) and the analysts' (``reviews.decided.v1``). The booking learns them only
from these events; it never imports ``fraud``.

- ``decline``: a trip not yet under way is cancelled by the platform with reason
  ``payment_risk`` (its hold voided, an assigned driver released, the rider's page told); a
  trip already under way goes on with its capture held, for the analysts (stopping a ride
  mid-way strands the rider); a trip over stays over.
- ``review``: the capture at completion is held until an analyst decides.
- an analyst's outcome: ``approved`` captures a held payment at (or after) completion;
  ``legitimate``, ``refunded_as_fraud`` and ``confirmed_fraud`` cancel a trip not yet under
  way, void a hold and refund a capture (``payments.refunded.v1`` with the outcome as reason).

The capture checkpoint's verdict (``fraud.scored.v1`` with ``checkpoint`` capture, on a fare
waiting at completion: ``RIDESHARE_CAPTURE_WAIT_SECONDS``): ``approve`` captures the fare,
``review`` holds it until an analyst decides (as above), ``decline`` voids the hold (or, when
the wait ran out and the fare was captured without the verdict, refunds it, reason
``capture_risk``). A fare whose verdict is overdue is captured by ``captures_overdue_settle``.

Each verdict is acted on at most once and never undoes a step: the payment records the
verdict it acted on (``risk_decision``, ``review_outcome``) under the trip's lock, so a late,
repeated or replayed one finds it and changes nothing (the consumer's own
``ProcessedEvent`` claim already drops redeliveries of one event). Locks: the trip, then the
payment, as every trip step takes them.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from rideshare.errors import NotBookedHere, UnknownPayment
from rideshare.models import Payment, Trip
from rideshare.services.payments import (
    REFUSED,
    payment_capture,
    payment_capture_due,
    payment_refuse,
)
from rideshare.services.payments import _locked as _payment_lock
from rideshare.services.trips import _cancel, _trip_lock

Status = Trip.Status
# The trip has not started: cancelling it strands nobody.
NOT_UNDER_WAY = frozenset({Status.REQUESTED, Status.DRIVER_ASSIGNED})
OUTCOMES = frozenset({"approved", *REFUSED})
DECISIONS = ("approve", "review", "decline")
# The reason of a refund when the capture checkpoint declined a fare captured without waiting
# for it (``payments.refunded.v1``).
CAPTURE_RISK = "capture_risk"


def _locked(payment_id: str) -> tuple[Trip, Payment]:
    try:
        public_id = uuid.UUID(payment_id)
    except ValueError:
        raise UnknownPayment(f"No payment {payment_id}: not a payment id.") from None
    found = Payment.objects.filter(public_id=public_id).values_list("pk", "trip_id").first()
    if found is None:
        raise NotBookedHere(f"No payment {payment_id}.")
    payment_pk, trip_pk = found
    trip = _trip_lock(Trip(pk=trip_pk))
    return trip, _payment_lock(Payment(pk=payment_pk))


def _cancel_for_risk(trip: Trip, now: datetime) -> Payment:
    """Cancel the locked ``trip`` as the platform, reason ``payment_risk``, free: its hold is
    voided and an assigned driver released; return its payment."""
    _cancel(
        trip, by=Trip.CancelledBy.PLATFORM, fee_cents=0, now=now,
        reason=Trip.CancelReason.PAYMENT_RISK,
    )  # fmt: skip
    return trip.payment


def payment_verdict_apply(
    *, payment_id: str, decision: str, now: datetime | None = None
) -> Payment:
    """Act on the scorer's ``decision`` (``approve``, ``review``, ``decline``) on payment
    ``payment_id`` (its ``public_id``), as the module says. Publish ``trips.cancelled.v1``
    (``cancelled_by`` platform, reason ``payment_risk``) when a decline cancels the trip.
    Raise ``UnknownPayment`` when there is no such payment. Idempotent: a second verdict on the
    same payment changes nothing."""
    if decision not in DECISIONS:
        raise ValueError(f"unknown decision {decision!r}")
    now = now or timezone.now()
    with transaction.atomic():
        trip, payment = _locked(payment_id)
        if payment.risk_decision:
            return payment
        payment.risk_decision = decision
        fields = ["risk_decision"]
        if decision == "decline" and trip.status in NOT_UNDER_WAY:
            payment.save(update_fields=fields)
            return _cancel_for_risk(trip, now)
        if decision in ("review", "decline") and payment.status == Payment.Status.AUTHORIZED:
            payment.capture_held = True
            fields.append("capture_held")
        payment.save(update_fields=fields)
        return payment


def payment_review_settle(*, payment_id: str, outcome: str, now: datetime | None = None) -> Payment:
    """Act on an analyst's ``outcome`` for payment ``payment_id``, as the module says. Publish
    ``trips.cancelled.v1`` (a trip not yet under way, refused), ``payments.captured.v1``
    (approved after completion) or ``payments.refunded.v1`` (refused after capture). Raise
    ``UnknownPayment`` when there is no such payment. Idempotent: a second outcome on the same
    payment changes nothing."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown review outcome {outcome!r}")
    now = now or timezone.now()
    with transaction.atomic():
        trip, payment = _locked(payment_id)
        if payment.review_outcome:
            return payment
        payment.review_outcome = outcome
        payment.capture_held = False
        payment.save(update_fields=["review_outcome", "capture_held"])
        if outcome == "approved":
            if trip.status == Status.COMPLETED and payment.status == Payment.Status.AUTHORIZED:
                return payment_capture(payment=payment, amount_cents=trip.fare_cents, now=now)
            return payment
        if trip.status in NOT_UNDER_WAY:
            return _cancel_for_risk(trip, now)
        if trip.status == Status.PICKED_UP:
            # Voided at completion (``payment_settle_at_completion``): the ride goes on.
            return payment
        return payment_refuse(payment=payment, reason=outcome, now=now)


def payment_capture_verdict_apply(
    *, payment_id: str, decision: str, now: datetime | None = None
) -> Payment:
    """Act on the capture checkpoint's ``decision`` on payment ``payment_id``, as the module
    says: ``approve`` captures a fare waiting for it, ``review`` holds it for the analysts,
    ``decline`` voids the hold or refunds a fare captured already. Publish
    ``payments.captured.v1`` or ``payments.refunded.v1`` accordingly. Raise ``UnknownPayment``
    when there is no such payment. Idempotent: a second verdict on the same payment changes
    nothing; nor does one on a payment an analyst already settled."""
    if decision not in DECISIONS:
        raise ValueError(f"unknown decision {decision!r}")
    now = now or timezone.now()
    with transaction.atomic():
        trip, payment = _locked(payment_id)
        if payment.capture_decision:
            return payment
        payment.capture_decision = decision
        fields = ["capture_decision"]
        waiting = payment.status == Payment.Status.AUTHORIZED and payment.capture_due_at
        if decision == "review" and waiting and not payment.review_outcome:
            payment.capture_held = True
            fields.append("capture_held")
        payment.save(update_fields=fields)
        if payment.review_outcome:
            return payment  # an analyst's outcome stands
        if decision == "decline":
            return payment_refuse(payment=payment, reason=CAPTURE_RISK, now=now)
        if decision == "approve" and waiting and not payment.capture_held:
            return payment_capture(payment=payment, amount_cents=trip.fare_cents, now=now)
        return payment


def captures_overdue_settle(*, now: datetime | None = None, limit: int = 500) -> int:
    """Capture the fares whose capture checkpoint's verdict is overdue (``capture_due_at``
    passed, no verdict read, not held), oldest first, at most ``limit``; return how many were
    captured. Each under its trip's lock, in its own transaction: a verdict arriving meanwhile
    is acted on first or finds the fare captured. Safe to repeat (Celery beat runs it)."""
    now = now or timezone.now()
    due = list(
        Payment.objects.filter(
            status=Payment.Status.AUTHORIZED,
            capture_due_at__lte=now,
            capture_decision="",
            capture_held=False,
            review_outcome="",
        )
        .order_by("capture_due_at")
        .values_list("public_id", flat=True)[:limit]
    )
    captured = 0
    for public_id in due:
        with transaction.atomic():
            _, payment = _locked(str(public_id))
            settled = payment_capture_due(payment=payment, now=now)
            captured += settled.status == Payment.Status.CAPTURED
    return captured
