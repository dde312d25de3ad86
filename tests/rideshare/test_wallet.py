import logging
from datetime import UTC, datetime

import pytest
from django.conf import settings

from rideshare import cards, services
from rideshare.errors import InvalidInput
from rideshare.models import Card, Rider

from .factories import (
    DEVICE,
    MASTERCARD_OK,
    VISA_OK,
    card_make,
    context,
    database_dump,
    outbox_after,
    outbox_mark,
    rider_make,
    row_counts,
)

pytestmark = pytest.mark.django_db

NOW = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)


def _add(rider: Rider, **overrides) -> Card:
    kwargs = {
        "rider": rider,
        "number": "4242 4242 4242 4242",
        "exp_month": 5,
        "exp_year": 2025,
        "cvc": "123",
        "context": context(),
        "now": NOW,
    }
    kwargs.update(overrides)
    return services.card_add(**kwargs)


def test_card_add_keeps_brand_last4_and_fingerprint_and_publishes_card_added():
    rider = rider_make()
    mark = outbox_mark()
    card = _add(rider)
    card.refresh_from_db()
    assert (card.brand, card.last4, card.exp_month, card.exp_year) == ("visa", "4242", 5, 2025)
    assert card.fingerprint == cards.fingerprint(VISA_OK, key=settings.SECRET_KEY)
    assert card.processor_token.startswith("tok_")
    assert card.is_active is True
    assert card.added_at == NOW
    [(topic, key, payload)] = outbox_after(mark)
    assert topic == "cards.added.v1"
    assert key == str(card.public_id)
    assert payload["card_id"] == str(card.public_id)
    assert payload["rider_id"] == str(rider.public_id)
    assert payload["brand"] == "visa"
    assert payload["last4"] == "4242"
    assert (payload["exp_month"], payload["exp_year"]) == (5, 2025)
    assert payload["fingerprint"] == card.fingerprint
    assert payload["context"] == {
        "device_id": DEVICE,
        "ip": "203.0.113.7",
        "lat": None,
        "lng": None,
    }
    assert payload["occurred_at"] == "2025-05-01T12:00:00Z"
    assert payload["schema_version"] == 1


def test_fingerprint_is_the_same_across_riders_and_never_the_number():
    first = _add(rider_make())
    second = _add(rider_make(), number=VISA_OK)
    other = _add(rider_make(), number=MASTERCARD_OK)
    assert first.fingerprint == second.fingerprint
    assert first.fingerprint != other.fingerprint
    assert first.processor_token != second.processor_token
    assert VISA_OK not in first.fingerprint


def test_the_full_number_is_never_stored_published_or_logged(caplog):
    caplog.set_level(logging.DEBUG)
    rider = rider_make()
    _add(rider)
    _add(rider, number=MASTERCARD_OK)
    dump = database_dump()
    assert "4242" in dump  # the last four digits are stored, so the grep would see the rest
    for number in (VISA_OK, MASTERCARD_OK, "4242 4242 4242 4242", "424242424242", "555555555555"):
        assert number not in dump
        assert number not in caplog.text


@pytest.mark.parametrize(
    ("overrides", "errors"),
    [
        (
            {"number": "4242424242424241"},
            {"number": "This card number is not valid: check it for a typing mistake."},
        ),
        ({"number": "4242"}, {"number": "Enter the card number: 12 to 19 digits."}),
        ({"cvc": "12"}, {"cvc": "Enter the 3 or 4 digit security code."}),
        ({"cvc": "12a4"}, {"cvc": "Enter the 3 or 4 digit security code."}),
        ({"exp_month": 13}, {"exp_month": "Enter a month from 1 to 12."}),
        ({"exp_year": 25}, {"exp_year": "Enter a four-digit year (2000 to 2100)."}),
        ({"exp_month": 4}, {"exp_month": "This card expired at the end of 04/2025."}),
        (
            {"exp_year": 2024, "exp_month": 12},
            {"exp_year": "This card expired at the end of 12/2024."},
        ),
        (
            {"number": "1234", "cvc": "1"},
            {
                "number": "Enter the card number: 12 to 19 digits.",
                "cvc": "Enter the 3 or 4 digit security code.",
            },
        ),
    ],
)
def test_card_add_refuses_invalid_cards_and_writes_nothing(overrides, errors):
    rider = rider_make(device_id="")
    before = row_counts()
    with pytest.raises(InvalidInput) as caught:
        _add(rider, **overrides)
    assert caught.value.errors == errors
    assert row_counts() == before
    rider.refresh_from_db()
    assert rider.last_device_id == ""


def test_a_card_valid_through_its_expiry_month_is_accepted():
    assert _add(rider_make(), exp_month=5, exp_year=2025, now=NOW).exp_month == 5


def test_the_same_card_twice_in_one_wallet_is_refused_and_writes_nothing():
    rider = rider_make()
    _add(rider)
    before = row_counts()
    with pytest.raises(InvalidInput) as caught:
        _add(rider, context=context("device-b"))
    assert caught.value.errors == {"number": "This card is already in your wallet."}
    assert row_counts() == before
    rider.refresh_from_db()
    assert rider.last_device_id == DEVICE


def test_card_deactivate_keeps_the_card_inactive_and_lets_it_be_added_again():
    rider = rider_make()
    card = _add(rider)
    mark = outbox_mark()
    services.card_deactivate(card=card, context=context(), now=NOW)
    services.card_deactivate(card=card, context=context(), now=NOW)
    card.refresh_from_db()
    assert card.is_active is False
    assert outbox_after(mark) == []
    again = _add(rider)
    assert again.pk != card.pk
    assert again.fingerprint == card.fingerprint


def test_a_first_device_and_a_new_device_publish_device_changed():
    rider = rider_make(device_id="")
    mark = outbox_mark()
    card = _add(rider, context=context("phone-1"))
    services.card_deactivate(card=card, context=context("phone-1"), now=NOW)
    services.card_deactivate(card=card, context=context("laptop-2", ip="198.51.100.9"), now=NOW)
    events = outbox_after(mark)
    assert [topic for topic, _, _ in events] == [
        "riders.device_changed.v1",
        "cards.added.v1",
        "riders.device_changed.v1",
    ]
    first, second = events[0], events[2]
    assert first[1] == str(rider.public_id)
    assert first[2]["previous_device_id"] is None
    assert first[2]["context"]["device_id"] == "phone-1"
    assert second[2]["previous_device_id"] == "phone-1"
    assert second[2]["context"] == {
        "device_id": "laptop-2",
        "ip": "198.51.100.9",
        "lat": None,
        "lng": None,
    }
    rider.refresh_from_db()
    assert rider.last_device_id == "laptop-2"


def test_rider_login_publishes_rider_logged_in():
    rider = rider_make()
    mark = outbox_mark()
    services.rider_login(user=rider.user, context=context(), now=NOW)
    [(topic, key, payload)] = outbox_after(mark)
    assert topic == "riders.logged_in.v1"
    assert key == str(rider.public_id)
    assert payload["rider_id"] == str(rider.public_id)
    assert payload["context"]["device_id"] == DEVICE
    assert payload["occurred_at"] == "2025-05-01T12:00:00Z"


def test_rider_login_refuses_a_user_without_a_rider_profile():
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(username="nobody", password="x")
    before = row_counts()
    with pytest.raises(InvalidInput):
        services.rider_login(user=user, context=context())
    assert row_counts() == before


def test_card_make_factory_uses_the_riders_device():
    rider = rider_make(device_id="dev-z")
    mark = outbox_mark()
    card_make(rider)
    assert [topic for topic, _, _ in outbox_after(mark)] == ["cards.added.v1"]
