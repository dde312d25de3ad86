from datetime import UTC, datetime

import pytest
from django.contrib.auth import get_user_model

from rideshare import services
from rideshare.city import LatLng
from rideshare.errors import NotPermitted, PaymentStateError
from rideshare.models import ProcessorCharge

from .factories import (
    PICKUP,
    card_make,
    context,
    driver_make,
    outbox_after,
    outbox_mark,
    rider_make,
    row_counts,
    trip_make,
)

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)


def completed_trip():
    trip = trip_make(now=T0)
    driver = driver_make()
    services.trip_assign(trip=trip, driver=driver, now=T0)
    services.trip_pick_up(trip=trip, driver=driver, now=T0)
    return services.trip_complete(trip=trip, driver=driver, now=T0)


@pytest.mark.parametrize(
    ("dropoff", "distance_km"), [(LatLng(52.39, 4.935), 9.048), (LatLng(52.34, 4.845), 1.112)]
)
def test_an_authorised_payment_publishes_the_trips_planned_distance(dropoff, distance_km):
    rider = rider_make()
    card = card_make(rider)
    mark = outbox_mark()
    trip = services.trip_request(
        rider=rider, card=card, pickup=PICKUP, dropoff=dropoff, context=context(), now=T0
    )
    assert trip.distance_km == distance_km
    [(topic, key, payload), (requested, _, _)] = outbox_after(mark)
    assert (topic, key, requested) == (
        "payments.authorized.v1",
        str(card.public_id),
        "trips.requested.v1",
    )
    assert payload["distance_km"] == distance_km
    assert payload["trip_id"] == str(trip.public_id)


@pytest.fixture
def staff():
    return get_user_model().objects.create_user(username="ops", password="x", is_staff=True)


def test_staff_refund_in_parts_publishes_payment_refunded(staff):
    trip = completed_trip()
    mark = outbox_mark()
    payment = services.payment_refund(
        payment=trip.payment, refunded_by=staff, reason="driver took a detour", amount_cents=300
    )
    assert (payment.status, payment.refunded_cents) == ("captured", 300)
    payment = services.payment_refund(payment=payment, refunded_by=staff, reason="goodwill")
    assert (payment.status, payment.refunded_cents) == ("refunded", 2014)
    assert ProcessorCharge.objects.get(auth_code=payment.auth_code).refunded_cents == 2014
    events = outbox_after(mark)
    assert [(topic, key) for topic, key, _ in events] == [
        ("payments.refunded.v1", str(trip.card.public_id)),
        ("payments.refunded.v1", str(trip.card.public_id)),
    ]
    first, second = events[0][2], events[1][2]
    assert (first["amount_cents"], first["reason"]) == (300, "driver took a detour")
    assert (second["amount_cents"], second["reason"]) == (1714, "goodwill")
    assert first["payment_id"] == str(payment.public_id)
    assert first["trip_id"] == str(trip.public_id)


def test_refund_refuses_non_staff_over_refunds_and_uncaptured_payments(staff):
    trip = completed_trip()
    rider_user = trip.rider.user
    before = row_counts()
    with pytest.raises(NotPermitted, match=r"^Only staff may refund a payment\.$"):
        services.payment_refund(payment=trip.payment, refunded_by=rider_user, reason="me")
    with pytest.raises(
        PaymentStateError, match=r"^Cannot refund 2015 cents: 2014 cents are refundable\.$"
    ):
        services.payment_refund(
            payment=trip.payment, refunded_by=staff, reason="x", amount_cents=2015
        )
    assert row_counts() == before
    open_trip = trip_make(now=T0)
    before = row_counts()
    with pytest.raises(PaymentStateError, match="it is authorized"):
        services.payment_refund(payment=open_trip.payment, refunded_by=staff, reason="x")
    assert row_counts() == before
