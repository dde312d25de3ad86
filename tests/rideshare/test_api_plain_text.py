"""Text the database cannot store, refused where the API reads it.

JSON carries a NUL character and an unpaired surrogate; PostgreSQL stores neither (in a text
column or a JSON document) and UTF-8 does not encode a lone surrogate, so each reached the
server as a 500 (the first found by the schema fuzzer in CI: a chargeback id with a NUL). Each
field a client types is answered 422 naming the field, the device header 400, and nothing is
written."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from rideshare.api.schemas import plain_text

from .factories import DEVICE, bearer, card_make, rider_make, row_counts, trip_make

pytestmark = pytest.mark.django_db

NUL = "a\x00b"
LONE_SURROGATE = "a\ud800b"
CONTROL = "a\x1bb"
PROCESSOR_KEY = "plain-text-processor-key"


def _post(path: str, body: dict, headers: dict[str, str]):
    # ensure_ascii (the default) writes the surrogate as a \\ud800 escape, as a client would.
    return Client(raise_request_exception=False).post(
        path, data=json.dumps(body), content_type="application/json", headers=headers
    )


def _chargeback(payment_id: str, field: str, value: str) -> dict:
    body = {
        "chargeback_id": "cb-plain-1",
        "payment_id": payment_id,
        "reason_code": "10.4",
        "amount_cents": 100,
        "filed_at": "2026-01-01T00:00:00Z",
    }
    return body | {field: value}


@pytest.mark.parametrize("bad", [NUL, LONE_SURROGATE, CONTROL])
@pytest.mark.parametrize("field", ["chargeback_id", "payment_id", "reason_code"])
def test_a_chargeback_field_that_is_not_plain_text_is_refused_by_name(field, bad, settings):
    settings.PROCESSOR_API_KEY = PROCESSOR_KEY
    trip = trip_make()
    before = row_counts()

    response = _post(
        "/api/processor/chargebacks",
        _chargeback(str(trip.payment.public_id), field, bad),
        {"Authorization": f"Bearer {PROCESSOR_KEY}"},
    )

    assert response.status_code == 422, response.content
    assert field in response.json()["errors"], response.json()
    assert row_counts() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": NUL, "password": "pw"}, "username"),
        ({"username": "ana", "password": LONE_SURROGATE}, "password"),
        ({"username": "ana", "password": NUL}, "password"),
    ],
)
def test_a_login_that_is_not_plain_text_is_refused_by_name(body, field):
    rider_make("ana")
    before = row_counts()

    response = _post("/api/auth/token", body, {"X-Device-Id": DEVICE})

    assert response.status_code == 422, response.content
    assert response.json()["errors"] == {field: "Enter plain text, without control characters."}
    assert row_counts() == before


def test_a_card_number_and_code_that_are_not_plain_text_are_refused_by_name():
    rider = rider_make("cardholder")
    card_make(rider)
    headers = bearer(rider.user)
    before = row_counts()

    response = _post(
        "/api/cards",
        {"number": "4242\x00424242424242", "exp_month": 1, "exp_year": 2099, "cvc": "12\ud800"},
        headers,
    )

    assert response.status_code == 422, response.content
    assert set(response.json()["errors"]) == {"number", "cvc"}
    assert row_counts() == before


def test_a_device_header_that_is_not_plain_text_is_refused():
    rider = rider_make("quoter")
    headers = bearer(rider.user) | {"X-Device-Id": "device\x00a"}
    before = row_counts()

    response = _post(
        "/api/quotes",
        {"pickup": {"lat": 52.35, "lng": 4.9}, "dropoff": {"lat": 52.36, "lng": 4.91}},
        headers,
    )

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "device_id_required"
    assert "plain text" in response.json()["detail"]
    assert row_counts() == before


@pytest.mark.parametrize(
    ("value", "plain"),
    [
        ("Ana Müller 10.4 · 東京 🚕", True),
        ("tab\there", False),
        ("del\x7f", False),
        ("c1\x85", False),
        ("\udfff", False),
        ("", True),
    ],
)
def test_plain_text_is_text_without_control_characters_or_lone_surrogates(value, plain):
    assert plain_text(value) is plain
