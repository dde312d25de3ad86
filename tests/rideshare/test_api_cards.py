import json
import logging

import pytest
from django.test import Client

from rideshare.models import Card

from .factories import (
    MASTERCARD_OK,
    VISA_OK,
    bearer,
    card_make,
    database_dump,
    outbox_after,
    outbox_mark,
    rider_make,
    row_counts,
)

pytestmark = pytest.mark.django_db

NEW_CARD = {"number": "4242 4242 4242 4242", "exp_month": 12, "exp_year": 2099, "cvc": "123"}


def _post(path: str, body: dict, headers: dict):
    return Client().post(
        path, data=json.dumps(body), content_type="application/json", headers=headers
    )


def test_add_list_show_and_remove_a_card():
    rider = rider_make()
    headers = bearer(rider.user)
    mark = outbox_mark()
    added = _post("/api/cards", {**NEW_CARD, "location": {"lat": 52.35, "lng": 4.9}}, headers)
    assert added.status_code == 201
    body = added.json()
    card = Card.objects.get(rider=rider)
    assert body == {
        "id": str(card.public_id),
        "brand": "visa",
        "last4": "4242",
        "exp_month": 12,
        "exp_year": 2099,
        "added_at": body["added_at"],
        "is_active": True,
    }
    [(topic, key, payload)] = outbox_after(mark)
    assert (topic, key) == ("cards.added.v1", str(card.public_id))
    assert (payload["context"]["lat"], payload["context"]["lng"]) == (52.35, 4.9)
    assert Client().get("/api/cards", headers=headers).json() == [body]
    assert Client().get(f"/api/cards/{card.public_id}", headers=headers).json() == body
    removed = Client().delete(f"/api/cards/{card.public_id}", headers=headers)
    assert removed.status_code == 204
    assert Client().get("/api/cards", headers=headers).json() == []
    listed = Client().get("/api/cards?include_removed=true", headers=headers).json()
    assert [(c["id"], c["is_active"]) for c in listed] == [(str(card.public_id), False)]


def test_the_full_number_never_comes_back_and_is_never_stored_or_logged(caplog):
    caplog.set_level(logging.DEBUG)
    rider = rider_make()
    headers = bearer(rider.user)
    responses = [
        _post("/api/cards", NEW_CARD, headers),
        _post("/api/cards", NEW_CARD, headers),  # refused: already in the wallet
        _post("/api/cards", {**NEW_CARD, "number": MASTERCARD_OK, "exp_month": "soon"}, headers),
        _post("/api/cards", {**NEW_CARD, "number": "4242424242424241"}, headers),
        Client().get("/api/cards", headers=headers),
        Client().get("/api/openapi.json"),
    ]
    assert [r.status_code for r in responses] == [201, 422, 422, 422, 200, 200]
    text = "\n".join(r.content.decode() for r in responses)
    dump = database_dump()
    for number in (
        VISA_OK,
        "4242 4242 4242 4242",
        MASTERCARD_OK,
        "4242424242424241",
        "424242424242",
    ):
        assert number not in text
        assert number not in dump
        assert number not in caplog.text


@pytest.mark.parametrize(
    ("overrides", "errors"),
    [
        (
            {"number": "4242424242424241"},
            {"number": "This card number is not valid: check it for a typing mistake."},
        ),
        ({"cvc": "12345"}, {"cvc": "Enter the 3 or 4 digit security code."}),
        ({"exp_year": 2020}, {"exp_year": "This card expired at the end of 12/2020."}),
        (
            {"exp_month": "soon"},
            {"exp_month": "Input should be a valid integer, unable to parse string as an integer"},
        ),
        ({"number": None}, {"number": "Input should be a valid string"}),
    ],
)
def test_invalid_cards_are_422_with_field_messages_and_write_nothing(overrides, errors):
    headers = bearer(rider_make().user)
    before = row_counts()
    response = _post("/api/cards", {**NEW_CARD, **overrides}, headers)
    assert response.status_code == 422
    assert response.json() == {
        "code": "invalid",
        "detail": "The request is not valid.",
        "errors": errors,
    }
    assert row_counts() == before


def test_the_same_card_twice_is_422():
    rider = rider_make()
    headers = bearer(rider.user)
    assert _post("/api/cards", NEW_CARD, headers).status_code == 201
    before = row_counts()
    response = _post("/api/cards", NEW_CARD, headers)
    assert response.json()["errors"] == {"number": "This card is already in your wallet."}
    assert row_counts() == before


def test_another_riders_card_is_404_and_stays_active():
    card = card_make(rider_make())
    headers = bearer(rider_make().user)
    before = row_counts()
    assert Client().get(f"/api/cards/{card.public_id}", headers=headers).status_code == 404
    assert Client().delete(f"/api/cards/{card.public_id}", headers=headers).status_code == 404
    assert Client().get("/api/cards", headers=headers).json() == []
    assert row_counts() == before
    card.refresh_from_db()
    assert card.is_active is True
