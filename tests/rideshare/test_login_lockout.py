"""Brute force: the LOGIN_FAILURE_LIMIT-th failed login for one username from one address locks
that pair out: it and every login after it, the right password too, are refused (429,
Retry-After), on the web login and the API's
token endpoint alike; another address, or another username, is not."""

import json

import pytest
from django.conf import settings
from django.test import Client

from .factories import DEVICE, rider_make

pytestmark = pytest.mark.django_db

ATTACKER = "198.51.100.7"
RIDER_HOME = "192.0.2.44"


def web_login(password: str, address: str = ATTACKER, username: str = "ana"):
    return Client().post(
        "/login/", {"username": username, "password": password}, REMOTE_ADDR=address
    )


def token(password: str, address: str = ATTACKER):
    return Client().post(
        "/api/auth/token",
        data=json.dumps({"username": "ana", "password": password}),
        content_type="application/json",
        headers={"X-Device-Id": DEVICE},
        REMOTE_ADDR=address,
    )


def test_the_web_login_locks_a_username_out_from_the_guessing_address_only():
    rider_make("ana")
    rider_make("bo")
    failures = [web_login("guess").status_code for _ in range(settings.AXES_FAILURE_LIMIT)]

    locked = web_login("pw-ana")
    elsewhere = web_login("pw-ana", address=RIDER_HOME)
    other_user = web_login("pw-bo", username="bo")

    # The form again with its error, until the limit's own failure is refused.
    assert failures == [200] * (settings.AXES_FAILURE_LIMIT - 1) + [429]
    assert locked.status_code == 429
    assert int(locked["Retry-After"]) == settings.AXES_COOLOFF_TIME.total_seconds()
    assert "Too many failed sign-ins" in locked.content.decode()
    assert "_auth_user_id" not in locked.client.session
    assert elsewhere.status_code == 302  # the rider, from home, logs in
    assert other_user.status_code == 302


def test_the_api_token_endpoint_locks_out_with_a_json_error():
    rider_make("ana")
    failures = [token("guess").status_code for _ in range(settings.AXES_FAILURE_LIMIT)]

    locked = token("pw-ana")

    assert failures == [401] * (settings.AXES_FAILURE_LIMIT - 1) + [429]
    assert locked.status_code == 429
    assert locked.json()["code"] == "locked_out"
    assert "Try again in 15 minutes" in locked.json()["detail"]
    assert int(locked["Retry-After"]) == 900
    assert token("pw-ana", address=RIDER_HOME).status_code == 201


def test_a_success_before_the_limit_starts_the_count_again():
    rider_make("ana")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        web_login("guess")
    assert web_login("pw-ana").status_code == 302
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        web_login("guess")

    assert web_login("pw-ana").status_code == 302
