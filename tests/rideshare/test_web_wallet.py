import logging

import pytest

from rideshare.models import Card

from .factories import (
    MASTERCARD_OK,
    VISA_OK,
    card_make,
    database_dump,
    driver_make,
    outbox_after,
    outbox_mark,
    row_counts,
    web_client,
    web_rider,
)

pytestmark = pytest.mark.django_db

NEW_CARD = {"number": "4242 4242 4242 4242", "exp_month": "12", "exp_year": "2099", "cvc": "123"}
# Every way a test number could leak into a page, a row or a log line.
LEAKS = (VISA_OK, "4242 4242 4242 4242", MASTERCARD_OK, "5555 5555 5555 4444", "4242424242424241")


def test_the_wallet_lists_brand_last4_and_expiry_only():
    rider = web_rider()
    card_make(rider)
    card_make(rider, MASTERCARD_OK)
    response = web_client(rider.user).get("/wallet/")
    assert response.status_code == 200
    html = response.content.decode()
    assert [(c.brand, c.last4) for c in response.context["cards"]] == [
        ("mastercard", "4444"),
        ("visa", "4242"),
    ]
    assert "•••• 4242" in html
    assert "expires 12/2099" in html
    for number in LEAKS:
        assert number not in html


def test_adding_a_card_publishes_it_and_shows_it():
    rider = web_rider()
    client = web_client(rider.user)
    mark = outbox_mark()
    response = client.post("/wallet/", NEW_CARD, follow=True)
    assert response.redirect_chain == [("/wallet/", 302)]
    card = Card.objects.get(rider=rider)
    assert (card.brand, card.last4, card.exp_month, card.exp_year) == ("visa", "4242", 12, 2099)
    [(topic, key, payload)] = outbox_after(mark)
    assert (topic, key) == ("cards.added.v1", str(card.public_id))
    assert payload["context"]["device_id"] == rider.last_device_id
    assert "Added your visa card ending 4242." in response.content.decode()


def test_adding_a_card_goes_back_to_a_next_page():
    rider = web_rider()
    response = web_client(rider.user).post("/wallet/", {**NEW_CARD, "next": "/ride/"})
    assert response["Location"] == "/ride/"


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        (
            {"number": "4242 4242 4242 4241"},
            "number",
            "This card number is not valid: check it for a typing mistake.",
        ),
        ({"number": "4242"}, "number", "Enter the card number: 12 to 19 digits."),
        ({"number": ""}, "number", "This field is required."),
        ({"cvc": "12"}, "cvc", "Enter the 3 or 4 digit security code."),
        ({"exp_year": "2020"}, "exp_year", "This card expired at the end of 12/2020."),
        ({"exp_year": "soon"}, "exp_year", "Enter a whole number."),
        ({"exp_month": "13"}, "exp_month", "Select a valid choice. 13 is not one of the"),
    ],
)
def test_a_bad_card_shows_the_field_error_keeps_nothing_and_writes_nothing(
    overrides, field, message
):
    rider = web_rider()
    before = row_counts()
    response = web_client(rider.user).post("/wallet/", {**NEW_CARD, **overrides})
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert list(errors) == [field]
    assert errors[field][0].startswith(message)
    html = response.content.decode()
    assert f'<p class="field-error" id="id_{field}_error">' in html
    assert row_counts() == before
    number = overrides.get("number", NEW_CARD["number"])
    # Not even the re-rendered form carries the number or the code back.
    if number:
        assert number not in html
        assert number.replace(" ", "") not in html
    assert 'value="123"' not in html


def test_the_same_card_twice_is_an_error_on_the_number():
    rider = web_rider()
    client = web_client(rider.user)
    client.post("/wallet/", NEW_CARD)
    before = row_counts()
    response = client.post("/wallet/", NEW_CARD)
    assert response.context["form"].errors == {"number": ["This card is already in your wallet."]}
    assert row_counts() == before


def test_the_card_number_is_never_rendered_stored_or_logged(caplog):
    caplog.set_level(logging.DEBUG)
    rider = web_rider()
    client = web_client(rider.user)
    responses = [
        client.post("/wallet/", NEW_CARD, follow=True),
        client.post("/wallet/", NEW_CARD),  # already in the wallet
        client.post("/wallet/", {**NEW_CARD, "number": MASTERCARD_OK, "exp_year": "soon"}),
        client.post("/wallet/", {**NEW_CARD, "number": "4242424242424241"}),
        client.post("/wallet/", {**NEW_CARD, "number": "5555 5555 5555 4444"}, follow=True),
        client.get("/wallet/"),
        client.get("/ride/"),
    ]
    assert [r.status_code for r in responses] == [200] * 7
    text = "\n".join(r.content.decode() for r in responses)
    dump = database_dump()
    for number in LEAKS:
        assert number not in text
        assert number not in dump
        assert number not in caplog.text


def test_removing_a_card_deactivates_it():
    rider = web_rider()
    card = card_make(rider)
    client = web_client(rider.user)
    mark = outbox_mark()
    response = client.post(f"/wallet/cards/{card.public_id}/remove", follow=True)
    assert response.redirect_chain == [("/wallet/", 302)]
    card.refresh_from_db()
    assert card.is_active is False
    assert list(response.context["cards"]) == []
    assert "Removed the visa card ending 4242." in response.content.decode()
    assert outbox_after(mark) == []


def test_another_riders_card_cannot_be_removed():
    card = card_make(web_rider())
    intruder = web_rider()
    before = row_counts()
    response = web_client(intruder.user).post(f"/wallet/cards/{card.public_id}/remove")
    assert response.status_code == 404
    card.refresh_from_db()
    assert card.is_active is True
    assert row_counts() == before


def test_wallet_posts_without_the_csrf_token_are_403_and_write_nothing():
    rider = web_rider()
    card = card_make(rider)
    client = web_client(rider.user, enforce_csrf_checks=True)
    before = row_counts()
    assert client.post("/wallet/", NEW_CARD).status_code == 403
    assert client.post(f"/wallet/cards/{card.public_id}/remove").status_code == 403
    assert row_counts() == before
    card.refresh_from_db()
    assert card.is_active is True


def test_the_wallet_needs_a_rider_login():
    assert web_client().get("/wallet/")["Location"] == "/login/?next=/wallet/"
    response = web_client(driver_make().user).get("/wallet/")
    assert response.status_code == 403
    assert b"This account is not a rider" in response.content
