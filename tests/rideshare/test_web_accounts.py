import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from rideshare.models import Rider
from rideshare.web.devices import DEVICE_COOKIE, DEVICE_COOKIE_MAX_AGE

from .factories import (
    WEB_DEVICE,
    driver_make,
    outbox_after,
    outbox_mark,
    row_counts,
    web_client,
    web_rider,
)

pytestmark = pytest.mark.django_db

GOOD_PASSWORD = "correct-horse-battery"


def _sign_up(client, username="ana", password=GOOD_PASSWORD, confirm=None):
    return client.post(
        "/signup/",
        {
            "username": username,
            "password": password,
            "password_confirm": password if confirm is None else confirm,
        },
        REMOTE_ADDR="192.0.2.10",
    )


def test_the_first_visit_sets_a_long_lived_httponly_device_cookie():
    response = Client().get("/signup/")
    assert response.status_code == 200
    cookie = response.cookies[DEVICE_COOKIE]
    assert len(cookie.value) == 32
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert cookie["max-age"] == DEVICE_COOKIE_MAX_AGE
    again = Client()
    again.cookies[DEVICE_COOKIE] = cookie.value
    assert DEVICE_COOKIE not in again.get("/login/").cookies


def test_a_malformed_device_cookie_is_replaced_and_api_answers_set_none():
    client = Client()
    client.cookies[DEVICE_COOKIE] = "x"
    replaced = client.get("/login/").cookies[DEVICE_COOKIE].value
    assert replaced != "x"
    assert len(replaced) == 32
    assert DEVICE_COOKIE not in Client().get("/api/openapi.json").cookies


def test_sign_up_creates_a_logged_in_rider_and_publishes_the_first_login():
    client = web_client()
    mark = outbox_mark()
    response = _sign_up(client)
    assert response.status_code == 302
    assert response["Location"] == "/wallet/"
    rider = Rider.objects.get(user__username="ana")
    assert rider.user.check_password(GOOD_PASSWORD)
    assert rider.last_device_id == WEB_DEVICE
    context = {"device_id": WEB_DEVICE, "ip": "192.0.2.10", "lat": None, "lng": None}
    assert [(t, k, p["context"]) for t, k, p in outbox_after(mark)] == [
        ("riders.signed_up.v1", str(rider.public_id), context),
        ("riders.device_changed.v1", str(rider.public_id), context),
        ("riders.logged_in.v1", str(rider.public_id), context),
    ]
    wallet = client.get("/wallet/")
    assert wallet.status_code == 200
    assert b"Welcome! Add a card to book your first ride." in wallet.content


@pytest.mark.parametrize(
    ("username", "password", "confirm", "field", "message"),
    [
        ("ANA", GOOD_PASSWORD, None, "username", "This username is taken"),
        ("ana smith", GOOD_PASSWORD, None, "username", "Enter a valid username"),
        ("bob", "password", None, "password", "This password is too common."),
        ("bob", "short7!", None, "password", "This password is too short."),
        ("bob", GOOD_PASSWORD, "something-else", "password_confirm", "The two passwords differ."),
        ("", GOOD_PASSWORD, None, "username", "This field is required."),
    ],
)
def test_sign_up_with_bad_input_shows_the_field_error_and_writes_nothing(
    username, password, confirm, field, message
):
    web_rider("ana")
    users = get_user_model().objects.count()
    before = row_counts()
    response = _sign_up(web_client(), username, password, confirm)
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert list(errors) == [field]
    assert errors[field][0].startswith(message)
    assert message in response.content.decode()
    assert row_counts() == before
    assert get_user_model().objects.count() == users
    assert f'value="{password}"'.encode() not in response.content


def test_a_rider_logging_in_publishes_the_login_and_lands_on_booking():
    rider = web_rider("ana")
    client = web_client()
    mark = outbox_mark()
    response = client.post("/login/", {"username": "ana", "password": "pw-ana"})
    assert response.status_code == 302
    assert response["Location"] == "/ride/"
    [(topic, key, payload)] = outbox_after(mark)
    assert (topic, key) == ("riders.logged_in.v1", str(rider.public_id))
    assert payload["context"]["device_id"] == WEB_DEVICE
    assert client.get("/ride/").status_code == 200


def test_login_follows_a_next_on_this_site_only():
    web_rider("ana")
    response = web_client().post(
        "/login/", {"username": "ana", "password": "pw-ana", "next": "/trips/"}
    )
    assert response["Location"] == "/trips/"
    response = web_client().post(
        "/login/", {"username": "ana", "password": "pw-ana", "next": "https://evil.example/"}
    )
    assert response["Location"] == "/ride/"


def test_a_driver_logging_in_lands_on_the_console_and_publishes_nothing():
    driver = driver_make()
    mark = outbox_mark()
    response = web_client().post(
        "/login/", {"username": driver.user.username, "password": "driver-pass"}
    )
    assert response["Location"] == "/driver/"
    assert outbox_after(mark) == []


def test_a_wrong_password_is_refused_with_a_message_and_publishes_nothing():
    web_rider("ana")
    mark = outbox_mark()
    response = web_client().post("/login/", {"username": "ana", "password": "wrong"})
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content
    assert outbox_after(mark) == []


def test_log_out_is_a_post():
    rider = web_rider()
    client = web_client(rider.user)
    assert client.get("/logout/").status_code == 405
    response = client.post("/logout/")
    assert response.status_code == 302
    assert client.get("/wallet/")["Location"] == "/login/?next=/wallet/"


@pytest.mark.parametrize("path", ["/signup/", "/login/", "/logout/"])
def test_account_posts_without_the_csrf_token_are_403_and_write_nothing(path):
    web_rider("ana")
    before = row_counts()
    client = web_client(enforce_csrf_checks=True)
    body = {"username": "bob", "password": GOOD_PASSWORD, "password_confirm": GOOD_PASSWORD}
    assert client.post(path, body).status_code == 403
    assert row_counts() == before


def test_sign_up_with_the_csrf_token_passes_the_check():
    client = web_client(enforce_csrf_checks=True)
    page = client.get("/signup/")
    token = page.context["csrf_token"]
    response = client.post(
        "/signup/",
        {
            "username": "bob",
            "password": GOOD_PASSWORD,
            "password_confirm": GOOD_PASSWORD,
            "csrfmiddlewaretoken": str(token),
        },
    )
    assert response.status_code == 302
    assert Rider.objects.filter(user__username="bob").exists()
