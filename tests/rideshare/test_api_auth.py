import json

import pytest
from django.test import Client

from rideshare.models import ApiToken

from .factories import (
    DEVICE,
    bearer,
    driver_make,
    outbox_after,
    outbox_mark,
    rider_make,
    row_counts,
)

pytestmark = pytest.mark.django_db

CSRF_SECRET = "abcdefghijklmnopqrstuvwxyzABCDEF"  # any 32 letters: Django's secret format
QUOTE = {"pickup": {"lat": 52.33, "lng": 4.845}, "dropoff": {"lat": 52.39, "lng": 4.935}}


def _post(client: Client, path: str, body: dict, **kwargs):
    return client.post(path, data=json.dumps(body), content_type="application/json", **kwargs)


def test_token_create_returns_a_40_character_key_stored_only_as_a_hash_and_logs_the_rider_in():
    rider = rider_make("ana")
    mark = outbox_mark()
    response = _post(
        Client(),
        "/api/auth/token",
        {"username": "ana", "password": "pw-ana"},
        headers={"X-Device-Id": DEVICE},
        REMOTE_ADDR="192.0.2.10",
    )
    assert response.status_code == 201
    body = response.json()
    assert body["token_type"] == "Bearer"
    key = body["token"]
    assert len(key) == 40
    token = ApiToken.objects.get(user=rider.user)
    assert token.key_hash == ApiToken.hash_key(key)
    assert key not in token.key_hash
    [(topic, key_, payload)] = outbox_after(mark)
    assert (topic, key_) == ("riders.logged_in.v1", str(rider.public_id))
    assert payload["context"] == {"device_id": DEVICE, "ip": "192.0.2.10", "lat": None, "lng": None}
    trips = Client().get("/api/trips", headers={"Authorization": f"Bearer {key}"})
    assert trips.status_code == 200
    assert trips.json() == []


def test_token_create_with_a_wrong_password_is_401_and_writes_nothing():
    rider_make("ana")
    before = row_counts()
    response = _post(
        Client(),
        "/api/auth/token",
        {"username": "ana", "password": "wrong"},
        headers={"X-Device-Id": DEVICE},
    )
    assert response.status_code == 401
    assert response.json() == {"code": "unauthenticated", "detail": "Invalid username or password."}
    assert row_counts() == before


def test_token_create_without_a_device_id_is_400_and_writes_nothing():
    rider_make("ana")
    before = row_counts()
    response = _post(Client(), "/api/auth/token", {"username": "ana", "password": "pw-ana"})
    assert response.status_code == 400
    assert response.json() == {
        "code": "device_id_required",
        "detail": "The X-Device-Id header is required for rider actions.",
    }
    assert row_counts() == before


def test_token_create_for_a_driver_publishes_no_rider_login():
    driver = driver_make("dave")
    mark = outbox_mark()
    response = _post(
        Client(),
        "/api/auth/token",
        {"username": "dave", "password": "driver-pass"},
        headers={"X-Device-Id": "car-1"},
    )
    assert response.status_code == 201
    assert ApiToken.objects.filter(user=driver.user).count() == 1
    assert outbox_after(mark) == []


def test_requests_without_credentials_or_with_an_unknown_token_are_401():
    assert Client().get("/api/trips").status_code == 401
    response = _post(Client(), "/api/quotes", QUOTE, headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert response.json() == {"code": "unauthenticated", "detail": "Unauthorized"}


def test_a_token_of_an_inactive_user_is_refused():
    rider = rider_make()
    headers = bearer(rider.user)
    rider.user.is_active = False
    rider.user.save()
    assert Client().get("/api/trips", headers=headers).status_code == 401


def test_session_auth_reads_without_csrf_but_writes_only_with_it():
    rider = rider_make()
    client = Client(enforce_csrf_checks=True)
    client.force_login(rider.user)
    assert client.get("/api/cards").status_code == 200
    before = row_counts()
    refused = _post(client, "/api/quotes", QUOTE, headers={"X-Device-Id": DEVICE})
    assert refused.status_code == 403
    assert refused.json() == {"code": "forbidden", "detail": "CSRF check Failed"}
    assert row_counts() == before
    client.cookies["csrftoken"] = CSRF_SECRET
    wrong = _post(
        client, "/api/quotes", QUOTE, headers={"X-Device-Id": DEVICE, "X-CSRFToken": "x" * 32}
    )
    assert wrong.status_code == 403
    assert row_counts() == before
    accepted = _post(
        client, "/api/quotes", QUOTE, headers={"X-Device-Id": DEVICE, "X-CSRFToken": CSRF_SECRET}
    )
    assert accepted.status_code == 201


def test_a_bearer_token_needs_no_csrf_token_even_with_csrf_enforced():
    rider = rider_make()
    client = Client(enforce_csrf_checks=True)
    response = _post(client, "/api/quotes", QUOTE, headers=bearer(rider.user))
    assert response.status_code == 201


def test_riders_and_drivers_are_kept_to_their_own_endpoints():
    rider_headers = bearer(rider_make().user)
    driver_headers = bearer(driver_make().user, device_id="car-1")
    response = Client().get("/api/driver/trips", headers=rider_headers)
    assert response.status_code == 403
    assert response.json() == {"code": "forbidden", "detail": "This account is not a driver."}
    response = Client().get("/api/trips", headers=driver_headers)
    assert response.status_code == 403
    assert response.json() == {"code": "forbidden", "detail": "This account is not a rider."}


def test_openapi_docs_are_served_from_local_static_files():
    response = Client().get("/api/docs")
    assert response.status_code == 200
    page = response.content.decode()
    assert '<script src="/static/ninja/swagger-ui-bundle.js"></script>' in page
    assert 'href="/static/ninja/swagger-ui.css"' in page
    assert "cdn" not in page
    assert "http://" not in page
    assert "https://" not in page
    assert Client().get("/static/ninja/swagger-ui-bundle.js").status_code == 200
    schema = Client().get("/api/openapi.json").json()
    assert {
        "/api/auth/token",
        "/api/quotes",
        "/api/trips",
        "/api/trips/{trip_id}",
        "/api/trips/{trip_id}/cancellation",
        "/api/trips/{trip_id}/cancel",
        "/api/cards",
        "/api/cards/{card_id}",
        "/api/driver/trips",
        "/api/driver/trips/{trip_id}/accept",
        "/api/driver/trips/{trip_id}/pick-up",
        "/api/driver/trips/{trip_id}/complete",
        "/api/driver/trips/{trip_id}/cancel",
        "/api/processor/chargebacks",
    } == set(schema["paths"])
    assert set(schema["components"]["securitySchemes"]) == {
        "BearerToken",
        "BrowserSession",
        "ProcessorKey",
    }
