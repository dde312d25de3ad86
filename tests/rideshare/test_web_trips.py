from datetime import timedelta

import pytest
from django.utils import timezone

from rideshare import services
from rideshare.models import Trip

from .factories import (
    context,
    driver_make,
    outbox_after,
    outbox_mark,
    row_counts,
    trip_make,
    web_client,
    web_rider,
)

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


def _trip(rider) -> Trip:
    """A requested trip of ``rider``, paid with their card (added on their first trip)."""
    return trip_make(rider, card=rider.cards.filter(is_active=True).first())


def _assigned(rider, *, minutes_ago: float = 0):
    trip = _trip(rider)
    driver = driver_make()
    at = timezone.now() - timedelta(minutes=minutes_ago)
    return services.trip_assign(trip=trip, driver=driver, now=at), driver


def test_the_trip_page_shows_the_status_and_where_to_listen():
    rider = web_rider()
    trip = trip_make(rider)
    response = web_client(rider.user).get(f"/trips/{trip.public_id}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert f'data-socket-path="/ws/trips/{trip.public_id}/"' in html
    badge = '<span class="badge badge-requested" id="trip-status">Looking for a driver</span>'
    assert badge in html
    assert "Free cancellation until a driver is assigned" in html
    assert f'hx-get="/trips/{trip.public_id}/cancel"' in html
    assert "Visa •••• 4242" in html
    assert "€20.14" in html


def test_the_trip_page_names_the_driver_once_assigned():
    rider = web_rider()
    trip, driver = _assigned(rider)
    html = web_client(rider.user).get(f"/trips/{trip.public_id}/").content.decode()
    assert "Driver on the way" in html
    assert driver.name in html
    assert driver.vehicle_plate in html
    assert "Free cancellation until" in html


@pytest.mark.parametrize("page", ["", "cancel", "receipt"])
def test_another_riders_trip_is_404(page):
    owner = web_rider()
    trip = trip_make(owner)
    services.trip_complete(
        trip=services.trip_pick_up(
            trip=services.trip_assign(trip=trip, driver=(driver := driver_make())), driver=driver
        ),
        driver=driver,
    )
    assert web_client(owner.user).get(f"/trips/{trip.public_id}/{page}").status_code == 200
    response = web_client(web_rider().user).get(f"/trips/{trip.public_id}/{page}")
    assert response.status_code == 404
    assert b"There is nothing here, or it is not yours to see." in response.content


def test_another_rider_cannot_cancel_my_trip():
    trip = trip_make(web_rider())
    intruder = web_rider()
    before = row_counts()
    response = web_client(intruder.user).post(
        f"/trips/{trip.public_id}/cancel", {"confirm_fee_cents": 0}
    )
    assert response.status_code == 404
    assert row_counts() == before
    trip.refresh_from_db()
    assert trip.status == "requested"


def test_cancelling_before_a_driver_is_free():
    rider = web_rider()
    trip = trip_make(rider)
    client = web_client(rider.user)
    preview = client.get(f"/trips/{trip.public_id}/cancel", headers=HTMX)
    html = preview.content.decode()
    assert "<h1>" not in html  # a fragment for htmx
    assert "Cancelling now is free." in html
    assert 'name="confirm_fee_cents" value="0"' in html
    mark = outbox_mark()
    response = client.post(
        f"/trips/{trip.public_id}/cancel", {"confirm_fee_cents": 0}, headers=HTMX
    )
    assert response["HX-Redirect"] == f"/trips/{trip.public_id}/"
    trip.refresh_from_db()
    assert (trip.status, trip.cancellation_fee_cents, trip.payment.status) == (
        "cancelled",
        0,
        "voided",
    )
    assert [topic for topic, _, _ in outbox_after(mark)] == ["trips.cancelled.v1"]
    page = client.get(f"/trips/{trip.public_id}/").content.decode()
    assert "Trip cancelled. Nothing was charged." in page
    assert "Cancelled by you." in page
    assert 'id="cancel-button"' not in page


def test_the_cancel_page_works_without_htmx():
    rider = web_rider()
    trip = trip_make(rider)
    client = web_client(rider.user)
    page = client.get(f"/trips/{trip.public_id}/cancel").content.decode()
    assert "<h1>Cancel your trip?</h1>" in page
    assert "hx-post" not in page
    response = client.post(f"/trips/{trip.public_id}/cancel", {"confirm_fee_cents": 0})
    assert response.status_code == 302


def test_a_late_cancellation_warns_of_the_fee_and_charges_it_once_confirmed():
    rider = web_rider()
    trip, _ = _assigned(rider, minutes_ago=3)
    client = web_client(rider.user)
    html = client.get(f"/trips/{trip.public_id}/cancel", headers=HTMX).content.decode()
    assert "Cancelling now costs €5.00." in html
    assert "charged to your Visa card ending 4242" in html
    assert 'name="confirm_fee_cents" value="500"' in html
    assert "Cancel and pay €5.00" in html
    mark = outbox_mark()
    response = client.post(
        f"/trips/{trip.public_id}/cancel", {"confirm_fee_cents": 500}, headers=HTMX
    )
    assert response["HX-Redirect"] == f"/trips/{trip.public_id}/"
    trip.refresh_from_db()
    assert (trip.status, trip.cancellation_fee_cents) == ("cancelled", 500)
    assert (trip.payment.status, trip.payment.captured_cents) == ("captured", 500)
    assert [topic for topic, _, _ in outbox_after(mark)] == [
        "trips.cancelled.v1",
        "payments.captured.v1",
    ]
    page = client.get(f"/trips/{trip.public_id}/").content.decode()
    assert "Trip cancelled. A cancellation fee of €5.00 was charged." in page
    assert f'href="/trips/{trip.public_id}/receipt"' in page


def test_a_fee_that_appeared_after_the_preview_is_reported_not_charged():
    rider = web_rider()
    # The rider saw "free" (confirming 0), but the grace period ran out before they confirmed.
    trip, _ = _assigned(rider, minutes_ago=3)
    client = web_client(rider.user)
    before = row_counts()
    response = client.post(
        f"/trips/{trip.public_id}/cancel", {"confirm_fee_cents": 0}, headers=HTMX
    )
    assert response.status_code == 200
    assert "HX-Redirect" not in response
    html = response.content.decode()
    assert (
        "The cancellation fee changed: it is now €5.00, not the €0.00 you confirmed. "
        "Nothing was charged; confirm the new fee to cancel."
    ) in html
    assert 'name="confirm_fee_cents" value="500"' in html
    assert row_counts() == before
    trip.refresh_from_db()
    assert (trip.status, trip.payment.status) == ("driver_assigned", "authorized")


def test_a_trip_under_way_can_no_longer_be_cancelled():
    rider = web_rider()
    trip, driver = _assigned(rider)
    services.trip_pick_up(trip=trip, driver=driver)
    client = web_client(rider.user)
    assert (
        "This trip can no longer be cancelled."
        in client.get(f"/trips/{trip.public_id}/cancel", headers=HTMX).content.decode()
    )
    before = row_counts()
    response = client.post(
        f"/trips/{trip.public_id}/cancel", {"confirm_fee_cents": 0}, headers=HTMX
    )
    assert (
        "This trip can no longer be cancelled: on the way to your drop-off."
        in response.content.decode()
    )
    assert row_counts() == before


def test_cancel_without_the_csrf_token_is_403_and_writes_nothing():
    rider = web_rider()
    trip = trip_make(rider)
    before = row_counts()
    client = web_client(rider.user, enforce_csrf_checks=True)
    response = client.post(f"/trips/{trip.public_id}/cancel", {"confirm_fee_cents": 0})
    assert response.status_code == 403
    assert row_counts() == before


def _completed(rider) -> Trip:
    trip, driver = _assigned(rider)
    services.trip_pick_up(trip=trip, driver=driver)
    return services.trip_complete(trip=trip, driver=driver)


def test_the_history_lists_the_riders_trips_with_receipt_links():
    rider = web_rider()
    done = _completed(rider)
    waiting = _trip(rider)
    other = trip_make(web_rider())
    response = web_client(rider.user).get("/trips/")
    assert [t.public_id for t in response.context["trips"]] == [waiting.public_id, done.public_id]
    html = response.content.decode()
    assert str(other.public_id) not in html
    assert f'href="/trips/{done.public_id}/receipt"' in html
    assert f'href="/trips/{waiting.public_id}/receipt"' not in html
    assert "Arrived" in html
    assert "Looking for a driver" in html


def test_the_receipt_shows_fare_distance_card_and_times():
    rider = web_rider()
    trip = _completed(rider)
    response = web_client(rider.user).get(f"/trips/{trip.public_id}/receipt")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<strong>€20.14</strong>" in html
    assert "9.0 km" in html
    assert "Visa •••• 4242" in html
    assert f"{trip.completed_at:%H:%M:%S} UTC" in html
    assert f"{trip.picked_up_at:%H:%M:%S} UTC" in html
    assert trip.driver.name in html


def test_a_receipt_exists_only_for_charged_trips():
    rider = web_rider()
    client = web_client(rider.user)
    waiting = _trip(rider)
    free = services.trip_cancel(trip=_trip(rider), context=context(rider.last_device_id))
    assert client.get(f"/trips/{waiting.public_id}/receipt").status_code == 404
    assert client.get(f"/trips/{free.public_id}/receipt").status_code == 404
    late, _ = _assigned(rider, minutes_ago=3)
    late = services.trip_cancel(
        trip=late, context=context(rider.last_device_id), confirm_fee_cents=500
    )
    html = client.get(f"/trips/{late.public_id}/receipt").content.decode()
    assert "Cancellation fee" in html
    assert "<strong>€5.00</strong>" in html


def test_trip_pages_need_a_rider_login():
    trip = trip_make(web_rider())
    response = web_client().get(f"/trips/{trip.public_id}/")
    assert response["Location"] == f"/login/?next=/trips/{trip.public_id}/"
    assert web_client(driver_make().user).get("/trips/").status_code == 403
