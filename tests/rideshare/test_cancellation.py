from datetime import UTC, datetime, timedelta

import pytest

from rideshare import selectors, services
from rideshare.errors import CancellationFeeUnconfirmed
from rideshare.models import Payment, ProcessorCharge

from .factories import context, driver_make, outbox_after, outbox_mark, row_counts, trip_make

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
GRACE_END = T0 + timedelta(minutes=2)
LATE = GRACE_END + timedelta(seconds=1)


def assigned_trip():
    """A trip requested at T0 - 5 min and assigned at T0."""
    trip = trip_make(now=T0 - timedelta(minutes=5))
    driver = driver_make()
    return services.trip_assign(trip=trip, driver=driver, now=T0), driver


def test_preview_before_assignment_is_free_with_no_deadline():
    trip = trip_make(now=T0)
    preview = selectors.trip_cancellation_preview(trip=trip, now=T0 + timedelta(hours=1))
    assert preview == selectors.CancellationPreview(
        can_cancel=True, fee_cents=0, currency="EUR", status="requested", free_until=None
    )


def test_preview_after_assignment_is_free_until_the_grace_period_ends():
    trip, _ = assigned_trip()
    at_end = selectors.trip_cancellation_preview(trip=trip, now=GRACE_END)
    assert (at_end.can_cancel, at_end.fee_cents, at_end.free_until) == (True, 0, GRACE_END)
    late = selectors.trip_cancellation_preview(trip=trip, now=LATE)
    assert (late.can_cancel, late.fee_cents, late.free_until) == (True, 500, GRACE_END)


def test_preview_once_picked_up_says_no_cancellation():
    trip, driver = assigned_trip()
    trip = services.trip_pick_up(trip=trip, driver=driver, now=T0)
    preview = selectors.trip_cancellation_preview(trip=trip, now=LATE)
    assert preview == selectors.CancellationPreview(
        can_cancel=False, fee_cents=0, currency="EUR", status="picked_up", free_until=None
    )


def test_rider_cancels_a_requested_trip_for_free_and_the_hold_is_voided():
    trip = trip_make(now=T0)
    mark = outbox_mark()
    trip = services.trip_cancel(trip=trip, context=context(), now=T0 + timedelta(hours=1))
    trip.refresh_from_db()
    assert (trip.status, trip.cancelled_by, trip.cancellation_fee_cents) == (
        "cancelled",
        "rider",
        0,
    )
    assert trip.payment.status == "voided"
    assert ProcessorCharge.objects.get(auth_code=trip.payment.auth_code).status == "voided"
    [(topic, key, payload)] = outbox_after(mark)
    assert (topic, key) == ("trips.cancelled.v1", str(trip.rider.public_id))
    assert payload["trip_id"] == str(trip.public_id)
    assert payload["driver_id"] is None
    assert (payload["cancelled_by"], payload["fee_cents"], payload["stage"]) == (
        "rider",
        0,
        "requested",
    )


def test_rider_cancels_at_the_end_of_the_grace_period_for_free():
    trip, driver = assigned_trip()
    mark = outbox_mark()
    trip = services.trip_cancel(trip=trip, context=context(), now=GRACE_END)
    driver.refresh_from_db()
    assert (trip.status, trip.cancellation_fee_cents) == ("cancelled", 0)
    assert driver.status == "available"
    assert Payment.objects.get(trip=trip).status == "voided"
    [(topic, _, payload)] = outbox_after(mark)
    assert topic == "trips.cancelled.v1"
    assert payload["driver_id"] == str(driver.public_id)
    assert (payload["fee_cents"], payload["stage"]) == (0, "driver_assigned")


@pytest.mark.parametrize("confirmed", [0, 499, 2014])
def test_a_late_cancellation_without_the_matching_confirmation_is_refused(confirmed):
    trip, driver = assigned_trip()
    before = row_counts()
    with pytest.raises(CancellationFeeUnconfirmed) as caught:
        services.trip_cancel(
            trip=trip, context=context("another-device"), confirm_fee_cents=confirmed, now=LATE
        )
    assert (caught.value.fee_cents, caught.value.currency) == (500, "EUR")
    assert str(caught.value) == (
        f"Cancelling now costs 500 cents (EUR); confirm that amount to cancel "
        f"(confirmed: {confirmed})."
    )
    assert row_counts() == before
    trip.refresh_from_db()
    driver.refresh_from_db()
    assert (trip.status, driver.status, trip.payment.status) == (
        "driver_assigned",
        "on_trip",
        "authorized",
    )
    assert trip.rider.last_device_id == "device-a"


def test_a_late_cancellation_confirmed_captures_the_fee():
    trip, driver = assigned_trip()
    mark = outbox_mark()
    trip = services.trip_cancel(trip=trip, context=context(), confirm_fee_cents=500, now=LATE)
    trip.refresh_from_db()
    driver.refresh_from_db()
    assert (trip.status, trip.cancellation_fee_cents, trip.cancelled_at) == ("cancelled", 500, LATE)
    assert driver.status == "available"
    payment = trip.payment
    assert (payment.status, payment.amount_cents, payment.captured_cents) == ("captured", 2014, 500)
    assert ProcessorCharge.objects.get(auth_code=payment.auth_code).captured_cents == 500
    events = outbox_after(mark)
    assert [(topic, key) for topic, key, _ in events] == [
        ("trips.cancelled.v1", str(trip.rider.public_id)),
        ("payments.captured.v1", str(trip.card.public_id)),
    ]
    cancelled, captured = events[0][2], events[1][2]
    assert (cancelled["cancelled_by"], cancelled["fee_cents"], cancelled["stage"]) == (
        "rider",
        500,
        "driver_assigned",
    )
    assert (captured["payment_id"], captured["amount_cents"]) == (str(payment.public_id), 500)


def test_confirming_a_fee_when_none_applies_still_cancels_for_free():
    trip = trip_make(now=T0)
    trip = services.trip_cancel(trip=trip, context=context(), confirm_fee_cents=500, now=T0)
    assert (trip.status, trip.cancellation_fee_cents) == ("cancelled", 0)
    assert Payment.objects.get(trip=trip).captured_cents == 0


def test_a_driver_cancellation_is_free_for_the_rider_even_after_the_grace_period():
    trip, driver = assigned_trip()
    mark = outbox_mark()
    trip = services.trip_cancel_by_driver(trip=trip, driver=driver, now=LATE + timedelta(hours=1))
    trip.refresh_from_db()
    driver.refresh_from_db()
    assert (trip.status, trip.cancelled_by, trip.cancellation_fee_cents) == (
        "cancelled",
        "driver",
        0,
    )
    assert trip.payment.status == "voided"
    assert driver.status == "available"
    [(topic, key, payload)] = outbox_after(mark)
    assert (topic, key) == ("trips.cancelled.v1", str(trip.rider.public_id))
    assert payload["driver_id"] == str(driver.public_id)
    assert (payload["cancelled_by"], payload["fee_cents"], payload["stage"]) == (
        "driver",
        0,
        "driver_assigned",
    )
