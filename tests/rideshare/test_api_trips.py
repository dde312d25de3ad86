import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from rideshare import services
from rideshare.city import LatLng
from rideshare.models import Quote, Trip

from .factories import (
    DEVICE,
    VISA_DECLINED,
    bearer,
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

PICKUP = {"lat": 52.33, "lng": 4.845}
DROPOFF = {"lat": 52.39, "lng": 4.935}


def _post(path: str, body: dict, headers: dict, **kwargs):
    return Client().post(
        path, data=json.dumps(body), content_type="application/json", headers=headers, **kwargs
    )


def _no_device(headers: dict) -> dict:
    return {k: v for k, v in headers.items() if k != "X-Device-Id"}


def test_quote_then_request_then_read_the_trip():
    rider = rider_make()
    card = card_make(rider)
    headers = bearer(rider.user)
    quoted = _post("/api/quotes", {"pickup": PICKUP, "dropoff": DROPOFF}, headers)
    assert quoted.status_code == 201
    quote = quoted.json()
    assert {
        k: quote[k] for k in ("pickup", "dropoff", "distance_km", "fare_cents", "currency")
    } == {
        "pickup": {"lat": 52.33, "lng": 4.845, "zone": "Z-1-1"},
        "dropoff": {"lat": 52.39, "lng": 4.935, "zone": "Z-4-4"},
        "distance_km": 9.048,
        "fare_cents": 2014,
        "currency": "EUR",
    }
    mark = outbox_mark()
    requested = _post(
        "/api/trips",
        {
            "quote_id": quote["id"],
            "card_id": str(card.public_id),
            "location": {"lat": 52.331, "lng": 4.846},
        },
        headers,
        REMOTE_ADDR="192.0.2.44",
    )
    assert requested.status_code == 201
    trip = requested.json()
    assert trip["status"] == "requested"
    assert trip["card"] == {"id": str(card.public_id), "brand": "visa", "last4": "4242"}
    assert (trip["fare_cents"], trip["driver"], trip["payment_status"]) == (
        2014,
        None,
        "authorized",
    )
    assert [topic for topic, _, _ in outbox_after(mark)] == [
        "payments.authorized.v1",
        "trips.requested.v1",
    ]
    assert outbox_after(mark)[0][2]["context"] == {
        "device_id": DEVICE,
        "ip": "192.0.2.44",
        "lat": 52.331,
        "lng": 4.846,
    }
    shown = Client().get(f"/api/trips/{trip['id']}", headers=headers)
    assert shown.status_code == 200
    assert shown.json() == trip
    listed = Client().get("/api/trips", headers=headers)
    assert [t["id"] for t in listed.json()] == [trip["id"]]


def test_request_from_points_uses_the_pickup_as_the_riders_location():
    rider = rider_make()
    card = card_make(rider)
    headers = bearer(rider.user)
    mark = outbox_mark()
    response = _post(
        "/api/trips",
        {"pickup": PICKUP, "dropoff": DROPOFF, "card_id": str(card.public_id)},
        headers,
    )
    assert response.status_code == 201
    context = outbox_after(mark)[0][2]["context"]
    assert (context["lat"], context["lng"]) == (52.33, 4.845)


def test_a_declined_card_is_402_with_the_decline_code_and_a_payment_declined_event():
    rider = rider_make()
    card = card_make(rider, VISA_DECLINED)
    headers = bearer(rider.user)
    mark = outbox_mark()
    response = _post(
        "/api/trips",
        {"pickup": PICKUP, "dropoff": DROPOFF, "card_id": str(card.public_id)},
        headers,
    )
    assert response.status_code == 402
    body = response.json()
    trip = Trip.objects.get(rider=rider)
    assert body == {
        "code": "card_declined",
        "detail": "The visa card ending 0002 was declined (card_declined).",
        "decline_code": "card_declined",
        "trip_id": str(trip.public_id),
        "payment_id": str(trip.payment.public_id),
    }
    assert (trip.status, trip.payment.status) == ("payment_declined", "declined")
    [(topic, key, payload)] = outbox_after(mark)
    assert (topic, key) == ("payments.declined.v1", str(card.public_id))
    assert payload["decline_code"] == "card_declined"


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"pickup": PICKUP}, {"dropoff": "Field required"}),
        (
            {"pickup": {"lat": "north", "lng": 4.8}, "dropoff": DROPOFF},
            {"pickup.lat": "Input should be a valid number, unable to parse string as a number"},
        ),
        (
            {"pickup": {"lat": 91, "lng": 4.8}, "dropoff": DROPOFF},
            {"pickup.lat": "Input should be less than or equal to 90"},
        ),
        (
            {"pickup": PICKUP, "dropoff": {"lat": 52.0, "lng": 4.9}},
            {
                "dropoff": "The dropoff point (52.0, 4.9) is outside the city: latitude must be "
                "within 52.30..52.42 and longitude within 4.80..4.98."
            },
        ),
    ],
)
def test_invalid_quotes_are_422_with_field_messages_and_write_nothing(body, errors):
    headers = bearer(rider_make().user)
    before = row_counts()
    response = _post("/api/quotes", body, headers)
    assert response.status_code == 422
    assert response.json() == {
        "code": "invalid",
        "detail": "The request is not valid.",
        "errors": errors,
    }
    assert row_counts() == before


def test_an_expired_quote_is_422_and_writes_nothing():
    rider = rider_make()
    card = card_make(rider)
    headers = bearer(rider.user)
    quote_id = _post("/api/quotes", {"pickup": PICKUP, "dropoff": DROPOFF}, headers).json()["id"]
    Quote.objects.filter(public_id=quote_id).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    before = row_counts()
    response = _post("/api/trips", {"quote_id": quote_id, "card_id": str(card.public_id)}, headers)
    assert response.status_code == 422
    assert list(response.json()["errors"]) == ["quote_id"]
    assert row_counts() == before


def test_rider_actions_without_a_device_id_are_400_and_write_nothing():
    rider = rider_make()
    card = card_make(rider)
    trip = trip_make(rider, card=card)
    headers = _no_device(bearer(rider.user))
    before = row_counts()
    calls = [
        ("/api/quotes", {"pickup": PICKUP, "dropoff": DROPOFF}),
        ("/api/trips", {"pickup": PICKUP, "dropoff": DROPOFF, "card_id": str(card.public_id)}),
        (f"/api/trips/{trip.public_id}/cancel", {}),
        (
            "/api/cards",
            {"number": "5555555555554444", "exp_month": 1, "exp_year": 2099, "cvc": "123"},
        ),
    ]
    for path, body in calls:
        response = _post(path, body, headers)
        assert response.status_code == 400, path
        assert response.json()["code"] == "device_id_required"
    response = Client().delete(f"/api/cards/{card.public_id}", headers=headers)
    assert response.status_code == 400
    blank = _post(
        "/api/quotes", {"pickup": PICKUP, "dropoff": DROPOFF}, {**headers, "X-Device-Id": " "}
    )
    assert blank.status_code == 400
    too_long = _post(
        "/api/quotes", {"pickup": PICKUP, "dropoff": DROPOFF}, {**headers, "X-Device-Id": "d" * 65}
    )
    assert too_long.json() == {
        "code": "device_id_required",
        "detail": "The X-Device-Id header is over 64 characters.",
    }
    assert row_counts() == before
    card.refresh_from_db()
    assert card.is_active is True


def test_another_riders_trip_is_404_everywhere_and_nothing_is_written():
    trip = trip_make()
    headers = bearer(rider_make().user)
    before = row_counts()
    not_found = {"code": "not_found", "detail": "Not found."}
    for response in (
        Client().get(f"/api/trips/{trip.public_id}", headers=headers),
        Client().get(f"/api/trips/{trip.public_id}/cancellation", headers=headers),
        _post(f"/api/trips/{trip.public_id}/cancel", {}, headers),
    ):
        assert response.status_code == 404
        assert response.json() == not_found
    assert Client().get("/api/trips", headers=headers).json() == []
    assert row_counts() == before
    trip.refresh_from_db()
    assert trip.status == "requested"


def test_a_trip_request_with_another_riders_card_or_quote_is_404():
    rider = rider_make()
    headers = bearer(rider.user)
    other = rider_make()
    their_card = card_make(other)
    their_quote = services.trip_quote(
        rider=other, pickup=LatLng(**PICKUP), dropoff=LatLng(**DROPOFF), context=context()
    )
    my_card = card_make(rider)
    before = row_counts()
    by_card = _post(
        "/api/trips",
        {"pickup": PICKUP, "dropoff": DROPOFF, "card_id": str(their_card.public_id)},
        headers,
    )
    by_quote = _post(
        "/api/trips",
        {"quote_id": str(their_quote.public_id), "card_id": str(my_card.public_id)},
        headers,
    )
    assert (by_card.status_code, by_quote.status_code) == (404, 404)
    assert row_counts() == before


def test_cancellation_preview_then_cancel_with_the_confirmed_fee():
    rider = rider_make()
    headers = bearer(rider.user)
    trip = trip_make(rider)
    services.trip_assign(trip=trip, driver=driver_make(), now=timezone.now() - timedelta(minutes=3))
    preview = Client().get(f"/api/trips/{trip.public_id}/cancellation", headers=headers)
    assert preview.status_code == 200
    body = preview.json()
    assert (body["can_cancel"], body["fee_cents"], body["currency"], body["status"]) == (
        True,
        500,
        "EUR",
        "driver_assigned",
    )
    before = row_counts()
    refused = _post(f"/api/trips/{trip.public_id}/cancel", {}, headers)
    assert refused.status_code == 409
    assert refused.json() == {
        "code": "cancellation_fee_unconfirmed",
        "detail": (
            "Cancelling now costs 500 cents (EUR); confirm that amount to cancel (confirmed: 0)."
        ),
        "fee_cents": 500,
        "currency": "EUR",
    }
    assert row_counts() == before
    negative = _post(f"/api/trips/{trip.public_id}/cancel", {"confirm_fee_cents": -1}, headers)
    assert negative.status_code == 422
    assert negative.json()["errors"] == {
        "confirm_fee_cents": "Input should be greater than or equal to 0"
    }
    mark = outbox_mark()
    cancelled = _post(f"/api/trips/{trip.public_id}/cancel", {"confirm_fee_cents": 500}, headers)
    assert cancelled.status_code == 200
    assert (cancelled.json()["status"], cancelled.json()["cancellation_fee_cents"]) == (
        "cancelled",
        500,
    )
    assert cancelled.json()["payment_status"] == "captured"
    assert [topic for topic, _, _ in outbox_after(mark)] == [
        "trips.cancelled.v1",
        "payments.captured.v1",
    ]
    again = _post(f"/api/trips/{trip.public_id}/cancel", {"confirm_fee_cents": 500}, headers)
    assert again.status_code == 409
    assert again.json()["code"] == "illegal_transition"
    assert again.json()["status"] == "cancelled"


def test_a_free_cancellation_needs_no_confirmation():
    rider = rider_make()
    headers = bearer(rider.user)
    trip = trip_make(rider)
    preview = Client().get(f"/api/trips/{trip.public_id}/cancellation", headers=headers).json()
    assert preview == {
        "can_cancel": True,
        "fee_cents": 0,
        "currency": "EUR",
        "status": "requested",
        "free_until": None,
    }
    response = _post(f"/api/trips/{trip.public_id}/cancel", {}, headers)
    assert response.status_code == 200
    assert response.json()["payment_status"] == "voided"
