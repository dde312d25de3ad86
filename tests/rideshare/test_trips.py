from datetime import UTC, datetime, timedelta

import pytest

from rideshare import services
from rideshare.city import LatLng
from rideshare.errors import (
    CardDeclined,
    DriverUnavailable,
    IllegalTransition,
    InvalidInput,
    NotTripDriver,
)
from rideshare.models import Driver, Payment, Trip

from .factories import (
    DEVICE,
    DROPOFF,
    PICKUP,
    VISA_DECLINED,
    VISA_NO_FUNDS,
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
CONTEXT_JSON = {"device_id": DEVICE, "ip": "203.0.113.7", "lat": None, "lng": None}


def trip_at(status: str, *, now: datetime = T0) -> tuple[Trip, Driver]:
    """A trip moved through the services to ``status``, and a driver (its own once assigned)."""
    driver = driver_make()
    trip = trip_make(now=now)
    if status in ("driver_assigned", "picked_up", "completed", "cancelled_by_driver"):
        trip = services.trip_assign(trip=trip, driver=driver, now=now)
    if status in ("picked_up", "completed"):
        trip = services.trip_pick_up(trip=trip, driver=driver, now=now)
    if status == "completed":
        trip = services.trip_complete(trip=trip, driver=driver, now=now)
    if status == "cancelled":
        trip = services.trip_cancel(trip=trip, context=context(), now=now)
    if status == "cancelled_by_driver":
        trip = services.trip_cancel_by_driver(trip=trip, driver=driver, now=now)
    return trip, driver


def test_trip_quote_prices_the_trip_and_keeps_it_five_minutes():
    rider = rider_make()
    mark = outbox_mark()
    quote = services.trip_quote(
        rider=rider, pickup=PICKUP, dropoff=DROPOFF, context=context(), now=T0
    )
    assert (quote.pickup_zone, quote.dropoff_zone) == ("Z-1-1", "Z-4-4")
    assert (quote.distance_km, quote.duration_minutes) == (9.048, 22.6)
    assert (quote.fare_cents, quote.currency) == (2014, "EUR")
    assert quote.expires_at == T0 + timedelta(minutes=5)
    assert outbox_after(mark) == []


def test_trip_quote_refuses_points_outside_the_city_and_writes_nothing():
    rider = rider_make()
    before = row_counts()
    with pytest.raises(InvalidInput) as caught:
        services.trip_quote(
            rider=rider,
            pickup=LatLng(52.0, 4.85),
            dropoff=LatLng(52.35, 5.5),
            context=context(),
            now=T0,
        )
    assert set(caught.value.errors) == {"pickup", "dropoff"}
    assert caught.value.errors["pickup"].startswith("The pickup point (52.0, 4.85) is outside")
    assert row_counts() == before


def test_trip_request_from_a_quote_authorises_and_publishes():
    rider = rider_make()
    card = card_make(rider)
    quote = services.trip_quote(
        rider=rider, pickup=PICKUP, dropoff=DROPOFF, context=context(), now=T0
    )
    mark = outbox_mark()
    trip = services.trip_request(
        rider=rider, card=card, quote=quote, context=context(), now=T0 + timedelta(minutes=4)
    )
    trip.refresh_from_db()
    assert trip.status == "requested"
    assert trip.quote_id == quote.pk
    assert (trip.fare_cents, trip.currency, trip.distance_km) == (2014, "EUR", 9.048)
    payment = Payment.objects.get(trip=trip)
    assert (payment.status, payment.amount_cents, payment.captured_cents) == ("authorized", 2014, 0)
    assert payment.auth_code.startswith("auth_")
    events = outbox_after(mark)
    assert [(topic, key) for topic, key, _ in events] == [
        ("payments.authorized.v1", str(card.public_id)),
        ("trips.requested.v1", str(rider.public_id)),
    ]
    authorized, requested = events[0][2], events[1][2]
    assert authorized["payment_id"] == str(payment.public_id)
    assert authorized["trip_id"] == str(trip.public_id)
    assert authorized["rider_id"] == str(rider.public_id)
    assert authorized["card_id"] == str(card.public_id)
    assert authorized["card_fingerprint"] == card.fingerprint
    assert (authorized["card_brand"], authorized["card_last4"]) == (card.brand, card.last4)
    assert authorized["pickup"] == {"lat": 52.33, "lng": 4.845, "zone": "Z-1-1"}
    assert authorized["dropoff"]["zone"] == "Z-4-4"
    assert (authorized["amount_cents"], authorized["currency"]) == (2014, "EUR")
    assert (authorized["pickup_zone"], authorized["distance_km"]) == ("Z-1-1", 9.048)
    assert authorized["context"] == CONTEXT_JSON
    assert requested["trip_id"] == str(trip.public_id)
    assert requested["card_id"] == str(card.public_id)
    assert requested["pickup"] == {"lat": 52.33, "lng": 4.845, "zone": "Z-1-1"}
    assert requested["dropoff"] == {"lat": 52.39, "lng": 4.935, "zone": "Z-4-4"}
    assert (requested["distance_km"], requested["fare_cents"]) == (9.048, 2014)
    assert requested["context"] == CONTEXT_JSON
    assert requested["occurred_at"] == "2025-05-01T12:04:00Z"


def test_trip_request_from_points_prices_them():
    trip = trip_make(now=T0)
    assert trip.quote_id is None
    assert (trip.pickup_zone, trip.dropoff_zone, trip.fare_cents) == ("Z-1-1", "Z-4-4", 2014)


@pytest.mark.parametrize(
    ("number", "decline_code"),
    [(VISA_DECLINED, "card_declined"), (VISA_NO_FUNDS, "insufficient_funds")],
)
def test_a_declined_card_keeps_the_declined_payment_and_publishes_payment_declined(
    number, decline_code
):
    rider = rider_make()
    card = card_make(rider, number)
    quote = services.trip_quote(
        rider=rider, pickup=PICKUP, dropoff=DROPOFF, context=context(), now=T0
    )
    mark = outbox_mark()
    with pytest.raises(CardDeclined) as caught:
        services.trip_request(rider=rider, card=card, quote=quote, context=context(), now=T0)
    assert caught.value.decline_code == decline_code
    assert (
        caught.value.message == f"The visa card ending {number[-4:]} was declined ({decline_code})."
    )
    trip = Trip.objects.get(public_id=caught.value.trip_id)
    assert trip.status == "payment_declined"
    assert trip.quote_id is None
    payment = Payment.objects.get(public_id=caught.value.payment_id)
    assert (payment.status, payment.decline_code, payment.auth_code) == (
        "declined",
        decline_code,
        "",
    )
    [(topic, key, payload)] = outbox_after(mark)
    assert (topic, key) == ("payments.declined.v1", str(card.public_id))
    assert payload["decline_code"] == decline_code
    assert payload["payment_id"] == str(payment.public_id)
    assert payload["trip_id"] == str(trip.public_id)
    assert payload["card_fingerprint"] == card.fingerprint
    assert payload["amount_cents"] == 2014
    assert payload["context"] == CONTEXT_JSON
    # The quote is still usable with another card.
    other = card_make(rider)
    retried = services.trip_request(rider=rider, card=other, quote=quote, context=context(), now=T0)
    assert retried.status == "requested"


def _refused(errors: dict, **kwargs) -> None:
    before = row_counts()
    with pytest.raises(InvalidInput) as caught:
        services.trip_request(context=context(), now=T0, **kwargs)
    assert caught.value.errors == errors
    assert row_counts() == before


def test_trip_request_refuses_bad_quotes_and_writes_nothing():
    rider = rider_make()
    card = card_make(rider)
    old = services.trip_quote(
        rider=rider,
        pickup=PICKUP,
        dropoff=DROPOFF,
        context=context(),
        now=T0 - timedelta(minutes=5),
    )
    _refused(
        {"quote_id": "This quote expired at 12:00:00 UTC; ask for a new one."},
        rider=rider,
        card=card,
        quote=old,
    )
    theirs = services.trip_quote(
        rider=rider_make(), pickup=PICKUP, dropoff=DROPOFF, context=context(), now=T0
    )
    _refused({"quote_id": "No such quote."}, rider=rider, card=card, quote=theirs)
    used = services.trip_quote(
        rider=rider, pickup=PICKUP, dropoff=DROPOFF, context=context(), now=T0
    )
    services.trip_request(rider=rider, card=card, quote=used, context=context(), now=T0)
    _refused(
        {"quote_id": "This quote was already used; ask for a new one."},
        rider=rider,
        card=card,
        quote=used,
    )
    _refused(
        {"quote_id": "Give either a quote or a pickup and a dropoff, not both."},
        rider=rider,
        card=card,
        quote=used,
        pickup=PICKUP,
    )
    _refused(
        {"quote_id": "Give a quote, or both a pickup and a dropoff."},
        rider=rider,
        card=card,
        pickup=PICKUP,
    )


def test_trip_request_refuses_bad_cards_and_points_and_writes_nothing():
    rider = rider_make()
    points = {"pickup": PICKUP, "dropoff": DROPOFF}
    _refused(
        {"card_id": "No such card in your wallet."},
        rider=rider,
        card=card_make(rider_make()),
        **points,
    )
    removed = card_make(rider)
    services.card_deactivate(card=removed, context=context())
    _refused(
        {"card_id": "This card was removed from your wallet."}, rider=rider, card=removed, **points
    )
    expired = card_make(rider_make(), now=T0)
    expired_rider = expired.rider
    later = datetime(2100, 1, 1, tzinfo=UTC)
    before = row_counts()
    with pytest.raises(InvalidInput) as caught:
        services.trip_request(
            rider=expired_rider, card=expired, context=context(), now=later, **points
        )
    assert caught.value.errors == {"card_id": "This card expired at the end of 12/2099."}
    assert row_counts() == before
    card = card_make(rider)
    with pytest.raises(InvalidInput) as caught:
        services.trip_request(
            rider=rider,
            card=card,
            pickup=PICKUP,
            dropoff=LatLng(53.0, 4.9),
            context=context(),
            now=T0,
        )
    assert list(caught.value.errors) == ["dropoff"]


def test_trip_assign_publishes_trip_assigned_and_puts_the_driver_on_trip():
    trip = trip_make(now=T0)
    driver = driver_make()
    mark = outbox_mark()
    trip = services.trip_assign(trip=trip, driver=driver, now=T0 + timedelta(minutes=1))
    trip.refresh_from_db()
    driver.refresh_from_db()
    assert (trip.status, trip.driver_id) == ("driver_assigned", driver.pk)
    assert trip.assigned_at == T0 + timedelta(minutes=1)
    assert driver.status == "on_trip"
    [(topic, key, payload)] = outbox_after(mark)
    assert (topic, key) == ("trips.assigned.v1", str(trip.rider.public_id))
    assert payload["trip_id"] == str(trip.public_id)
    assert payload["driver_id"] == str(driver.public_id)
    assert payload["occurred_at"] == "2025-05-01T12:01:00Z"


def test_a_busy_driver_cannot_be_assigned_and_nothing_is_written():
    _, driver = trip_at("driver_assigned")
    other = trip_make(now=T0)
    before = row_counts()
    with pytest.raises(DriverUnavailable, match="is on_trip, not available"):
        services.trip_assign(trip=other, driver=driver, now=T0)
    assert row_counts() == before
    other.refresh_from_db()
    assert (other.status, other.driver_id) == ("requested", None)


def test_trip_pick_up_publishes_trip_started():
    trip, driver = trip_at("driver_assigned")
    mark = outbox_mark()
    trip = services.trip_pick_up(trip=trip, driver=driver, now=T0 + timedelta(minutes=6))
    trip.refresh_from_db()
    assert (trip.status, trip.picked_up_at) == ("picked_up", T0 + timedelta(minutes=6))
    [(topic, key, payload)] = outbox_after(mark)
    assert (topic, key) == ("trips.started.v1", str(trip.rider.public_id))
    assert (payload["trip_id"], payload["driver_id"]) == (
        str(trip.public_id),
        str(driver.public_id),
    )


def test_trip_complete_captures_the_fare_and_frees_the_driver_at_the_dropoff():
    trip, driver = trip_at("picked_up")
    mark = outbox_mark()
    trip = services.trip_complete(trip=trip, driver=driver, now=T0 + timedelta(minutes=30))
    trip.refresh_from_db()
    driver.refresh_from_db()
    assert (trip.status, trip.completed_at) == ("completed", T0 + timedelta(minutes=30))
    assert (driver.status, driver.zone, driver.lat, driver.lng) == (
        "available",
        "Z-4-4",
        52.39,
        4.935,
    )
    payment = trip.payment
    assert (payment.status, payment.captured_cents) == ("captured", 2014)
    events = outbox_after(mark)
    assert [(topic, key) for topic, key, _ in events] == [
        ("trips.completed.v1", str(trip.rider.public_id)),
        ("payments.captured.v1", str(trip.card.public_id)),
    ]
    completed, captured = events[0][2], events[1][2]
    assert completed["driver_id"] == str(driver.public_id)
    assert (completed["fare_cents"], completed["distance_km"]) == (2014, 9.048)
    assert captured["payment_id"] == str(payment.public_id)
    assert (captured["amount_cents"], captured["currency"]) == (2014, "EUR")


STEPS = {
    "assign": lambda trip, driver: services.trip_assign(trip=trip, driver=driver_make(), now=T0),
    "pick_up": lambda trip, driver: services.trip_pick_up(trip=trip, driver=driver, now=T0),
    "complete": lambda trip, driver: services.trip_complete(trip=trip, driver=driver, now=T0),
    "rider_cancel": lambda trip, driver: services.trip_cancel(trip=trip, context=context(), now=T0),
    "driver_cancel": lambda trip, driver: services.trip_cancel_by_driver(
        trip=trip, driver=driver, now=T0
    ),
}
ILLEGAL = [
    ("requested", "pick_up"),
    ("requested", "complete"),
    ("requested", "driver_cancel"),
    ("driver_assigned", "assign"),
    ("driver_assigned", "complete"),
    ("picked_up", "assign"),
    ("picked_up", "pick_up"),
    ("picked_up", "rider_cancel"),
    ("picked_up", "driver_cancel"),
    ("completed", "assign"),
    ("completed", "pick_up"),
    ("completed", "complete"),
    ("completed", "rider_cancel"),
    ("completed", "driver_cancel"),
    ("cancelled", "assign"),
    ("cancelled", "pick_up"),
    ("cancelled", "rider_cancel"),
    ("cancelled_by_driver", "complete"),
    ("cancelled_by_driver", "driver_cancel"),
]


@pytest.mark.parametrize(("status", "step"), ILLEGAL)
def test_illegal_transitions_raise_and_write_nothing(status, step):
    trip, driver = trip_at(status)
    trip.refresh_from_db()
    driver.refresh_from_db()
    before = row_counts()
    snapshot = (trip.status, trip.driver_id, trip.cancelled_at, trip.completed_at, driver.status)
    with pytest.raises(IllegalTransition) as caught:
        STEPS[step](trip, driver)
    current = "cancelled" if status.startswith("cancelled") else status
    assert caught.value.status == current
    assert f"trip {trip.public_id} is {current}; this step needs a trip that is" in str(
        caught.value
    )
    assert row_counts() == before
    trip.refresh_from_db()
    driver.refresh_from_db()
    assert (trip.status, trip.driver_id, trip.cancelled_at, trip.completed_at, driver.status) == (
        snapshot
    )
    assert trip.payment.status == Payment.objects.get(pk=trip.payment.pk).status


def test_illegal_transition_message_names_the_allowed_statuses():
    trip, driver = trip_at("requested")
    with pytest.raises(IllegalTransition) as caught:
        services.trip_complete(trip=trip, driver=driver, now=T0)
    assert str(caught.value) == (
        f"Cannot complete: trip {trip.public_id} is requested; "
        "this step needs a trip that is picked_up."
    )


def test_another_driver_cannot_drive_the_trip_and_nothing_is_written():
    trip, _ = trip_at("driver_assigned")
    stranger = driver_make()
    before = row_counts()
    with pytest.raises(NotTripDriver):
        services.trip_pick_up(trip=trip, driver=stranger, now=T0)
    with pytest.raises(NotTripDriver):
        services.trip_cancel_by_driver(trip=trip, driver=stranger, now=T0)
    assert row_counts() == before
    trip.refresh_from_db()
    assert trip.status == "driver_assigned"
