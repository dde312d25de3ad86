"""The booking's side of the capture checkpoint (``RIDESHARE_CAPTURE_WAIT_SECONDS`` > 0): at
completion the fare waits for the capture scorer's verdict, which captures, holds or voids it;
without one by its due time it is captured all the same."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from events.contracts import FraudScored, PaymentCaptureRequested
from rideshare import services
from rideshare.handlers import handle_event
from rideshare.models import Payment, ProcessorCharge, Trip
from rideshare.services.verdicts import (
    captures_overdue_settle,
    payment_capture_verdict_apply,
    payment_review_settle,
    payment_verdict_apply,
)

from .factories import driver_make, outbox_after, outbox_mark, trip_make

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
DONE = T0 + timedelta(minutes=20)
WAIT_S = 120.0


@pytest.fixture(autouse=True)
def _checkpoint_on(settings):
    settings.RIDESHARE_CAPTURE_WAIT_SECONDS = WAIT_S


def _completed(*, authorization: str | None = None) -> tuple[Trip, Payment, int]:
    """A completed trip whose fare waits for the capture checkpoint, and the outbox mark from
    before its completion."""
    trip = trip_make(now=T0)
    driver = driver_make()
    trip = services.trip_assign(trip=trip, driver=driver, now=T0 + timedelta(minutes=1))
    trip = services.trip_pick_up(trip=trip, driver=driver, now=T0 + timedelta(minutes=5))
    if authorization:
        payment_verdict_apply(
            payment_id=str(trip.payment.public_id), decision=authorization, now=T0
        )
    mark = outbox_mark()
    trip = services.trip_complete(trip=trip, driver=driver, now=DONE)
    return trip, Payment.objects.get(trip=trip), mark


def _verdict(payment: Payment, decision: str, *, at: datetime = DONE) -> Payment:
    payment_capture_verdict_apply(payment_id=str(payment.public_id), decision=decision, now=at)
    payment.refresh_from_db()
    return payment


def test_completion_asks_for_the_capture_verdict_with_the_driver_instead_of_capturing():
    trip, payment, mark = _completed()
    assert (payment.status, payment.captured_cents) == ("authorized", 0)
    assert payment.capture_due_at == DONE + timedelta(seconds=WAIT_S)
    topics = [topic for topic, _, _ in outbox_after(mark)]
    assert topics == ["trips.completed.v1", "payments.capture_requested.v1"]
    [(_, key, body)] = [e for e in outbox_after(mark) if e[0] == PaymentCaptureRequested.topic]
    event = PaymentCaptureRequested.model_validate(body)
    assert key == str(payment.card.public_id)
    assert event.driver_id == str(trip.driver.public_id)
    assert (event.amount_cents, event.payment_id) == (trip.fare_cents, str(payment.public_id))
    # The rider's context as the trip was booked: what device and address features read.
    assert (event.context.device_id, event.context.ip) == (payment.device_id, payment.ip)
    assert payment.device_id


def test_approve_captures_the_fare():
    trip, payment, mark = _completed()
    payment = _verdict(payment, "approve")
    assert (payment.status, payment.captured_cents, payment.capture_decision) == (
        "captured", trip.fare_cents, "approve",
    )  # fmt: skip
    assert ProcessorCharge.objects.get(auth_code=payment.auth_code).status == "captured"
    assert [t for t, _, _ in outbox_after(mark)][-1] == "payments.captured.v1"


def test_review_holds_the_fare_until_an_analyst_approves_it():
    trip, payment, _ = _completed()
    payment = _verdict(payment, "review")
    assert (payment.status, payment.capture_held) == ("authorized", True)
    # The deadline passes: a held fare waits for the analyst, not for the clock.
    assert captures_overdue_settle(now=DONE + timedelta(hours=1)) == 0
    payment_review_settle(payment_id=str(payment.public_id), outcome="approved", now=DONE)
    payment.refresh_from_db()
    assert (payment.status, payment.captured_cents) == ("captured", trip.fare_cents)


def test_review_refused_by_an_analyst_voids_the_hold():
    _, payment, _ = _completed()
    payment = _verdict(payment, "review")
    payment_review_settle(payment_id=str(payment.public_id), outcome="confirmed_fraud", now=DONE)
    payment.refresh_from_db()
    assert (payment.status, payment.captured_cents) == ("voided", 0)


def test_decline_voids_the_hold_and_the_trip_stays_completed():
    trip, payment, mark = _completed()
    payment = _verdict(payment, "decline")
    trip.refresh_from_db()
    assert (payment.status, payment.captured_cents, trip.status) == ("voided", 0, "completed")
    assert ProcessorCharge.objects.get(auth_code=payment.auth_code).status == "voided"
    assert "payments.captured.v1" not in [t for t, _, _ in outbox_after(mark)]


def test_a_fare_without_a_verdict_is_captured_once_due_and_a_late_decline_refunds_it():
    trip, payment, mark = _completed()
    assert captures_overdue_settle(now=DONE + timedelta(seconds=WAIT_S - 1)) == 0
    assert captures_overdue_settle(now=DONE + timedelta(seconds=WAIT_S)) == 1
    assert captures_overdue_settle(now=DONE + timedelta(seconds=WAIT_S + 60)) == 0
    payment.refresh_from_db()
    assert (payment.status, payment.captured_cents) == ("captured", trip.fare_cents)
    payment = _verdict(payment, "decline", at=DONE + timedelta(minutes=5))
    assert (payment.status, payment.refunded_cents) == ("refunded", trip.fare_cents)
    [refund] = [b for t, _, b in outbox_after(mark) if t == "payments.refunded.v1"]
    assert refund["reason"] == "capture_risk"


def test_a_second_verdict_changes_nothing():
    _, payment, _ = _completed()
    _verdict(payment, "approve")
    payment = _verdict(payment, "decline")
    assert (payment.status, payment.capture_decision) == ("captured", "approve")


def test_a_payment_held_at_authorization_is_not_sent_to_the_capture_checkpoint():
    _, payment, mark = _completed(authorization="review")
    assert payment.capture_held
    assert payment.capture_due_at is None
    assert PaymentCaptureRequested.topic not in [t for t, _, _ in outbox_after(mark)]
    # A stray capture verdict on it captures nothing: the analysts decide.
    payment = _verdict(payment, "approve")
    assert payment.status == "authorized"


def test_with_the_checkpoint_off_completion_captures_at_once(settings):
    settings.RIDESHARE_CAPTURE_WAIT_SECONDS = 0
    trip, payment, mark = _completed()
    assert (payment.status, payment.captured_cents) == ("captured", trip.fare_cents)
    assert PaymentCaptureRequested.topic not in [t for t, _, _ in outbox_after(mark)]


def test_the_verdicts_consumer_routes_a_capture_verdict_by_its_checkpoint():
    trip, payment, _ = _completed()
    common = {
        "payment_id": str(payment.public_id),
        "payment_event_id": "00000000-0000-0000-0000-000000000001",
        "card_id": str(payment.card.public_id),
        "rider_id": str(payment.rider.public_id),
        "score": 0.9,
        "model_version": "m-capture",
        "occurred_at": DONE,
    }
    handle_event(FraudScored(**common, decision="decline", checkpoint="capture"))
    payment.refresh_from_db()
    trip.refresh_from_db()
    # The capture's decline voided the fare; read as an authorization's it would have held it.
    assert (payment.status, payment.capture_decision, payment.risk_decision) == (
        "voided", "decline", "",
    )  # fmt: skip
    assert trip.status == "completed"
