import re

import pytest

from rideshare.models import Quote, Trip

from .factories import (
    DROPOFF,
    PICKUP,
    VISA_DECLINED,
    WEB_DEVICE,
    card_make,
    outbox_after,
    outbox_mark,
    row_counts,
    web_client,
    web_rider,
)

pytestmark = pytest.mark.django_db

POINTS = {
    "pickup_lat": PICKUP.lat,
    "pickup_lng": PICKUP.lng,
    "dropoff_lat": DROPOFF.lat,
    "dropoff_lng": DROPOFF.lng,
}
HTMX = {"HX-Request": "true"}


def test_the_booking_page_draws_the_city_from_vendored_assets():
    rider = web_rider()
    card_make(rider)
    response = web_client(rider.user).get("/ride/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="map"' in html
    assert 'data-zones-url="/city/zones.geojson"' in html
    assert "/static/vendor/leaflet-1.9.4/leaflet.js" in html
    assert "/static/vendor/htmx-2.0.11/htmx.min.js" in html
    assert not re.search(r"(src|href)=\"(https?:)?//", html)
    assert "You have no card yet" not in html


def test_the_booking_page_asks_for_a_card_first():
    response = web_client(web_rider().user).get("/ride/")
    assert 'href="/wallet/?next=/ride/"' in response.content.decode()


def test_a_quote_shows_the_upfront_fare_and_the_cards():
    rider = web_rider()
    card = card_make(rider)
    mark = outbox_mark()
    response = web_client(rider.user).post("/ride/quote", POINTS, headers=HTMX)
    assert response.status_code == 200
    quote = Quote.objects.get(rider=rider)
    assert (quote.pickup_zone, quote.dropoff_zone, quote.fare_cents) == ("Z-1-1", "Z-4-4", 2014)
    html = response.content.decode()
    assert '<strong id="fare">€20.14</strong>' in html
    assert "zone Z-1-1" in html
    assert "9.0 km" in html
    assert f'value="{quote.public_id}"' in html
    assert f'<option value="{card.public_id}">Visa •••• 4242 (exp. 12/2099)</option>' in html
    assert outbox_after(mark) == []


def test_a_point_outside_the_city_is_explained_and_nothing_is_quoted():
    rider = web_rider()
    card_make(rider)
    before = row_counts()
    response = web_client(rider.user).post(
        "/ride/quote", {**POINTS, "dropoff_lat": 52.5}, headers=HTMX
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "The dropoff point (52.5, 4.935) is outside the city" in html
    assert 'id="fare"' not in html
    assert row_counts() == before


def test_a_quote_without_both_points_asks_for_them():
    rider = web_rider()
    before = row_counts()
    response = web_client(rider.user).post("/ride/quote", {"pickup_lat": 52.33}, headers=HTMX)
    assert "Set a pickup and a drop-off on the map." in response.content.decode()
    assert row_counts() == before


def _quote(client) -> Quote:
    client.post("/ride/quote", POINTS, headers=HTMX)
    return Quote.objects.latest("id")


def test_booking_a_quote_requests_the_trip_and_goes_to_its_page():
    rider = web_rider()
    card = card_make(rider)
    client = web_client(rider.user)
    quote = _quote(client)
    mark = outbox_mark()
    response = client.post(
        "/ride/request",
        {"quote_id": quote.public_id, "card_id": card.public_id},
        headers=HTMX,
        REMOTE_ADDR="198.51.100.4",
    )
    trip = Trip.objects.get(rider=rider)
    assert response.status_code == 200
    assert response["HX-Redirect"] == f"/trips/{trip.public_id}/"
    assert (trip.status, trip.quote, trip.fare_cents) == ("requested", quote, 2014)
    events = outbox_after(mark)
    assert [topic for topic, _, _ in events] == ["payments.authorized.v1", "trips.requested.v1"]
    assert events[1][2]["context"] == {
        "device_id": WEB_DEVICE,
        "ip": "198.51.100.4",
        "lat": PICKUP.lat,
        "lng": PICKUP.lng,
    }


def test_booking_without_htmx_redirects():
    rider = web_rider()
    card = card_make(rider)
    client = web_client(rider.user)
    quote = _quote(client)
    body = {"quote_id": quote.public_id, "card_id": card.public_id}
    response = client.post("/ride/request", body)
    assert response.status_code == 302
    assert response["Location"] == f"/trips/{Trip.objects.get().public_id}/"


def test_a_declined_card_shows_the_reason_and_the_quote_stays_usable():
    rider = web_rider()
    declined = card_make(rider, VISA_DECLINED)
    client = web_client(rider.user)
    quote = _quote(client)
    response = client.post(
        "/ride/request", {"quote_id": quote.public_id, "card_id": declined.public_id}, headers=HTMX
    )
    assert response.status_code == 200
    assert "HX-Redirect" not in response
    html = response.content.decode()
    assert (
        "Your visa card ending 0002 was declined: the card&#x27;s bank declined the payment "
        "(card_declined). Choose another card."
    ) in html
    assert f'value="{quote.public_id}"' in html
    trip = Trip.objects.get(rider=rider)
    assert (trip.status, trip.payment.decline_code) == ("payment_declined", "card_declined")
    good = card_make(rider)
    retried = client.post(
        "/ride/request", {"quote_id": quote.public_id, "card_id": good.public_id}, headers=HTMX
    )
    assert "HX-Redirect" in retried


def test_a_used_quote_is_refused_with_a_message():
    rider = web_rider()
    card = card_make(rider)
    client = web_client(rider.user)
    quote = _quote(client)
    body = {"quote_id": quote.public_id, "card_id": card.public_id}
    client.post("/ride/request", body, headers=HTMX)
    before = row_counts()
    response = client.post("/ride/request", body, headers=HTMX)
    html = response.content.decode()
    assert "This quote was already used; ask for a new one." in html
    assert 'hx-include="#quote-form"' in html
    assert 'id="fare"' not in html
    assert row_counts() == before


@pytest.mark.parametrize("whose", ["card", "quote"])
def test_another_riders_card_or_quote_is_404_and_writes_nothing(whose):
    owner = web_rider()
    owner_client = web_client(owner.user)
    theirs = {"card": card_make(owner), "quote": _quote(owner_client)}
    rider = web_rider()
    mine = {"card": card_make(rider), "quote": _quote(web_client(rider.user))}
    body = {"card_id": mine["card"].public_id, "quote_id": mine["quote"].public_id}
    body[f"{whose}_id"] = theirs[whose].public_id
    before = row_counts()
    response = web_client(rider.user).post("/ride/request", body, headers=HTMX)
    assert response.status_code == 404
    assert row_counts() == before


def test_booking_posts_without_the_csrf_token_are_403_and_write_nothing():
    rider = web_rider()
    card = card_make(rider)
    quote = _quote(web_client(rider.user))
    client = web_client(rider.user, enforce_csrf_checks=True)
    before = row_counts()
    assert client.post("/ride/quote", POINTS, headers=HTMX).status_code == 403
    body = {"quote_id": quote.public_id, "card_id": card.public_id}
    assert client.post("/ride/request", body, headers=HTMX).status_code == 403
    assert row_counts() == before


def test_htmx_posts_pass_the_csrf_check_with_the_header_the_page_sets():
    rider = web_rider()
    card_make(rider)
    client = web_client(rider.user, enforce_csrf_checks=True)
    page = client.get("/ride/")
    token = re.search(r'"X-CSRFToken": "([^"]+)"', page.content.decode()).group(1)
    response = client.post("/ride/quote", POINTS, headers={**HTMX, "X-CSRFToken": token})
    assert response.status_code == 200
    assert Quote.objects.filter(rider=rider).count() == 1
