"""The booking acting on fraud verdicts (``rideshare.services.verdicts``): what each does to the
trip and the payment, what it publishes, and that a repeated or late one changes nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from rideshare import services
from rideshare.errors import UnknownPayment
from rideshare.models import Driver, Payment, ProcessorCharge, Trip
from rideshare.services.verdicts import payment_review_settle, payment_verdict_apply

from .factories import driver_make, outbox_after, outbox_mark, row_counts, trip_make

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
LATER = T0 + timedelta(seconds=3)


def _payment(trip: Trip) -> Payment:
    return Payment.objects.get(trip=trip)


def _charge(payment: Payment) -> ProcessorCharge:
    return ProcessorCharge.objects.get(auth_code=payment.auth_code)


def _assigned() -> tuple[Trip, Driver]:
    trip = trip_make(now=T0 - timedelta(minutes=1))
    driver = driver_make()
    return services.trip_assign(trip=trip, driver=driver, now=T0), driver


def _completed(*, decision: str | None = None) -> tuple[Trip, Payment]:
    trip, driver = _assigned()
    trip = services.trip_pick_up(trip=trip, driver=driver, now=T0)
    if decision:
        payment_verdict_apply(payment_id=str(_payment(trip).public_id), decision=decision, now=T0)
    trip = services.trip_complete(trip=trip, driver=driver, now=LATER)
    return trip, _payment(trip)


def test_decline_cancels_a_requested_trip_voids_its_hold_and_publishes_the_cancellation():
    trip = trip_make(now=T0)
    payment = _payment(trip)
    mark = outbox_mark()
    payment_verdict_apply(payment_id=str(payment.public_id), decision="decline", now=LATER)
    trip.refresh_from_db()
    payment.refresh_from_db()
    assert (trip.status, trip.cancelled_by, trip.cancel_reason, trip.cancelled_at) == (
        "cancelled", "platform", "payment_risk", LATER,
    )  # fmt: skip
    assert (payment.status, payment.risk_decision, payment.captured_cents) == (
        "voided",
        "decline",
        0,
    )
    assert _charge(payment).status == "voided"
    [(topic, key, event)] = outbox_after(mark)
    assert (topic, key) == ("trips.cancelled.v1", str(trip.rider.public_id))
    assert (event["cancelled_by"], event["reason"], event["stage"], event["fee_cents"]) == (
        "platform", "payment_risk", "requested", 0,
    )  # fmt: skip


def test_decline_of_an_assigned_trip_releases_the_driver():
    trip, driver = _assigned()
    payment_verdict_apply(payment_id=str(_payment(trip).public_id), decision="decline", now=LATER)
    trip.refresh_from_db()
    driver.refresh_from_db()
    assert (trip.status, trip.cancel_reason) == ("cancelled", "payment_risk")
    assert driver.status == Driver.Status.AVAILABLE
    [(_, _, event)] = [e for e in outbox_after(0) if e[0] == "trips.cancelled.v1"]
    assert (event["driver_id"], event["stage"]) == (str(driver.public_id), "driver_assigned")


def test_decline_once_picked_up_holds_the_capture_and_the_ride_goes_on():
    trip, driver = _assigned()
    trip = services.trip_pick_up(trip=trip, driver=driver, now=T0)
    payment_verdict_apply(payment_id=str(_payment(trip).public_id), decision="decline", now=LATER)
    trip = services.trip_complete(trip=trip, driver=driver, now=LATER)
    payment = _payment(trip)
    assert trip.status == "completed"
    assert (payment.status, payment.capture_held, payment.captured_cents) == ("authorized", True, 0)


def test_approve_changes_nothing_but_the_recorded_verdict():
    trip = trip_make(now=T0)
    before = row_counts()
    mark = outbox_mark()
    payment_verdict_apply(payment_id=str(_payment(trip).public_id), decision="approve", now=LATER)
    payment = _payment(trip)
    assert (payment.status, payment.risk_decision, payment.capture_held) == (
        "authorized", "approve", False,
    )  # fmt: skip
    assert row_counts() == before
    assert outbox_after(mark) == []


def test_review_holds_the_capture_at_completion_until_an_analyst_approves_it():
    trip, payment = _completed(decision="review")
    assert trip.status == "completed"
    assert (payment.status, payment.capture_held, payment.captured_cents) == ("authorized", True, 0)
    assert _charge(payment).status == "authorized"
    mark = outbox_mark()
    payment_review_settle(payment_id=str(payment.public_id), outcome="approved", now=LATER)
    payment.refresh_from_db()
    assert (payment.status, payment.captured_cents, payment.capture_held) == (
        "captured", trip.fare_cents, False,
    )  # fmt: skip
    assert payment.review_outcome == "approved"
    assert [(t, e["amount_cents"]) for t, _, e in outbox_after(mark)] == [
        ("payments.captured.v1", trip.fare_cents)
    ]


def test_an_approval_before_completion_lets_the_completion_capture():
    trip, driver = _assigned()
    payment = _payment(trip)
    payment_verdict_apply(payment_id=str(payment.public_id), decision="review", now=T0)
    payment_review_settle(payment_id=str(payment.public_id), outcome="approved", now=T0)
    trip = services.trip_pick_up(trip=trip, driver=driver, now=T0)
    trip = services.trip_complete(trip=trip, driver=driver, now=LATER)
    assert (_payment(trip).status, _payment(trip).captured_cents) == ("captured", trip.fare_cents)


@pytest.mark.parametrize("outcome", ["confirmed_fraud", "refunded_as_fraud", "legitimate"])
def test_a_refused_review_voids_a_held_payment(outcome):
    _trip, payment = _completed(decision="review")
    mark = outbox_mark()
    payment_review_settle(payment_id=str(payment.public_id), outcome=outcome, now=LATER)
    payment.refresh_from_db()
    assert (payment.status, payment.review_outcome, payment.captured_cents) == (
        "voided", outcome, 0,
    )  # fmt: skip
    assert _charge(payment).status == "voided"
    assert outbox_after(mark) == []


def test_fraud_confirmed_after_a_capture_refunds_it_once():
    trip, payment = _completed()
    assert payment.status == "captured"
    mark = outbox_mark()
    payment_review_settle(payment_id=str(payment.public_id), outcome="confirmed_fraud", now=LATER)
    payment_review_settle(payment_id=str(payment.public_id), outcome="confirmed_fraud", now=LATER)
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_cents) == ("refunded", trip.fare_cents)
    assert _charge(payment).refunded_cents == trip.fare_cents
    [(topic, _, event)] = outbox_after(mark)
    assert (topic, event["amount_cents"], event["reason"]) == (
        "payments.refunded.v1", trip.fare_cents, "confirmed_fraud",
    )  # fmt: skip


def test_fraud_confirmed_during_the_ride_voids_at_completion():
    trip, driver = _assigned()
    trip = services.trip_pick_up(trip=trip, driver=driver, now=T0)
    payment = _payment(trip)
    payment_verdict_apply(payment_id=str(payment.public_id), decision="review", now=T0)
    payment_review_settle(payment_id=str(payment.public_id), outcome="confirmed_fraud", now=T0)
    assert _payment(trip).status == "authorized"
    trip = services.trip_complete(trip=trip, driver=driver, now=LATER)
    assert (trip.status, _payment(trip).status) == ("completed", "voided")


def test_fraud_confirmed_before_the_ride_cancels_the_trip():
    trip = trip_make(now=T0)
    payment = _payment(trip)
    payment_verdict_apply(payment_id=str(payment.public_id), decision="review", now=T0)
    payment_review_settle(payment_id=str(payment.public_id), outcome="confirmed_fraud", now=LATER)
    trip.refresh_from_db()
    assert (trip.status, trip.cancelled_by, trip.cancel_reason) == (
        "cancelled", "platform", "payment_risk",
    )  # fmt: skip
    assert _payment(trip).status == "voided"


def test_a_later_verdict_never_undoes_a_decline():
    trip = trip_make(now=T0)
    payment_id = str(_payment(trip).public_id)
    payment_verdict_apply(payment_id=payment_id, decision="decline", now=T0)
    mark = outbox_mark()
    payment_verdict_apply(payment_id=payment_id, decision="approve", now=LATER)
    payment_verdict_apply(payment_id=payment_id, decision="decline", now=LATER)
    payment_review_settle(payment_id=payment_id, outcome="approved", now=LATER)
    trip.refresh_from_db()
    payment = _payment(trip)
    assert (trip.status, payment.status, payment.risk_decision) == (
        "cancelled", "voided", "decline",
    )  # fmt: skip
    assert outbox_after(mark) == []


def test_a_second_review_outcome_changes_nothing():
    _trip, payment = _completed(decision="review")
    payment_review_settle(payment_id=str(payment.public_id), outcome="approved", now=LATER)
    payment_review_settle(payment_id=str(payment.public_id), outcome="confirmed_fraud", now=LATER)
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_cents, payment.review_outcome) == (
        "captured", 0, "approved",
    )  # fmt: skip


def test_an_unknown_payment_raises_and_writes_nothing():
    trip_make(now=T0)
    before = row_counts()
    with pytest.raises(UnknownPayment):
        payment_verdict_apply(payment_id="no-such-payment", decision="decline", now=LATER)
    with pytest.raises(UnknownPayment):
        payment_review_settle(payment_id=str(uuid.uuid4()), outcome="approved", now=LATER)
    assert row_counts() == before
