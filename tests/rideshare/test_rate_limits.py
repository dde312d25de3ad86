"""Rate limits (frontend.limits): past its rate, a client's next sign-in post, API token request
or booking is refused with 429 and Retry-After, whether its earlier requests succeeded or not;
another client is not; a client's own X-Forwarded-For does not make it another one; the counts
are shared through Redis when the app runs with it."""

import json
import threading
import uuid

import pytest
from django.core.cache import caches
from django.test import Client, RequestFactory, override_settings

from frontend.limits import Limit

from .factories import DEVICE, bearer, rider_make

pytestmark = pytest.mark.django_db

SCRIPT = "198.51.100.23"
NEIGHBOUR = "192.0.2.80"
PICKUP = {"lat": 52.33, "lng": 4.845}
DROPOFF = {"lat": 52.39, "lng": 4.935}


def token(username: str, password: str, address: str = SCRIPT, **headers):
    return Client().post(
        "/api/auth/token",
        data=json.dumps({"username": username, "password": password}),
        content_type="application/json",
        headers={"X-Device-Id": DEVICE, **headers},
        REMOTE_ADDR=address,
    )


def quote(headers: dict):
    return Client().post(
        "/api/quotes",
        data=json.dumps({"pickup": PICKUP, "dropoff": DROPOFF}),
        content_type="application/json",
        headers=headers,
        REMOTE_ADDR=SCRIPT,
    )


@override_settings(RATE_LIMIT_TOKEN="3/m")
def test_the_token_endpoint_refuses_an_address_past_its_rate():
    rider_make("ana")
    # Other usernames each time: django-axes' lockout (per username) stays out of it.
    answers = [token(f"nobody-{n}", "guess").status_code for n in range(2)]
    answers.append(token("ana", "pw-ana").status_code)

    refused = token("ana", "pw-ana")

    assert answers == [401, 401, 201]
    assert refused.status_code == 429
    assert refused.json() == {"code": "rate_limited", "detail": "Too many requests."}
    assert 1 <= int(refused["Retry-After"]) <= 60
    # Another address is another client.
    assert token("ana", "pw-ana", address=NEIGHBOUR).status_code == 201


@override_settings(RATE_LIMIT_TOKEN="2/m")
def test_a_forwarded_for_header_written_by_the_client_is_not_another_client():
    rider_make("ana")
    for n in range(2):
        token("ana", "pw-ana", **{"X-Forwarded-For": f"203.0.113.{n}"})

    assert token("ana", "pw-ana", **{"X-Forwarded-For": "203.0.113.99"}).status_code == 429


@override_settings(RATE_LIMIT_BOOKING="2/m")
def test_bookings_are_limited_per_rider():
    ana, bo = rider_make("ana"), rider_make("bo")
    as_ana, as_bo = bearer(ana.user), bearer(bo.user)

    answers = [quote(as_ana).status_code for _ in range(3)]

    assert answers == [201, 201, 429]
    assert int(quote(as_ana)["Retry-After"]) >= 1
    # The same address, another rider.
    assert quote(as_bo).status_code == 201


@override_settings(RATE_LIMIT_LOGIN="2/m")
def test_the_web_sign_in_refuses_an_address_past_its_rate_with_a_page():
    rider_make("ana")

    def post(password: str):
        return Client().post(
            "/login/", {"username": "ana", "password": password}, REMOTE_ADDR=SCRIPT
        )

    answers = [post("guess").status_code, post("pw-ana").status_code]
    refused = post("pw-ana")

    assert answers == [200, 302]  # the form with its error, then signed in
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert "Too many sign-in attempts from your address" in refused.content.decode()
    assert "_auth_user_id" not in refused.client.session
    # Reading the sign-in page is not an attempt.
    assert Client().get("/login/", REMOTE_ADDR=SCRIPT).status_code == 200


@override_settings(RATE_LIMIT_TOKEN="")
def test_an_empty_rate_is_no_limit():
    rider_make("ana")

    assert {token("ana", "pw-ana").status_code for _ in range(30)} == {201}


@pytest.mark.redis
def test_web_processes_count_together_in_redis(redis_url):
    # What the settings choose with REDIS_URL: the counts in Redis, so two web processes
    # (here two cache connections) share them.
    prefix = f"limits-test-{uuid.uuid4().hex[:8]}"
    redis_cache = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "throttle": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_url,
            "KEY_PREFIX": prefix,
        },
    }
    rider_make("ana")
    with override_settings(CACHES=redis_cache, RATE_LIMIT_TOKEN="2/m"):
        first = token("ana", "pw-ana").status_code
        # A fresh handler: another process's connection to the same Redis.
        caches.close_all()
        del caches["throttle"]
        second = token("ana", "pw-ana").status_code
        refused = token("ana", "pw-ana")
        stored = caches["throttle"].get(f"limit:rate_limit_token:address:{SCRIPT}")

    assert (first, second, refused.status_code) == (201, 201, 429)
    assert isinstance(stored, list)
    assert len(stored) == 2


@override_settings(RATE_LIMIT_TOKEN="2/m")
def test_requests_served_at_once_keep_their_own_counts():
    # One Limit serves every request of its route, and ninja keeps a request's key and history
    # on it between allow_request and wait: a request checked on another thread meanwhile must
    # neither take over the refused one's Retry-After nor be counted against its key.
    limit = Limit("RATE_LIMIT_TOKEN")
    crowded, quiet = (
        RequestFactory().post("/", REMOTE_ADDR=SCRIPT),
        RequestFactory().post("/", REMOTE_ADDR=NEIGHBOUR),
    )
    assert limit.allow_request(crowded)
    assert limit.allow_request(crowded)
    refused = limit.allow_request(crowded)

    other = threading.Thread(target=limit.allow_request, args=[quiet])
    other.start()
    other.join()

    assert refused is False
    assert len(limit.history) == 2  # the refused request's own two, not the other's one
    history = caches["throttle"].get(f"limit:rate_limit_token:address:{NEIGHBOUR}")
    assert len(history) == 1
    assert caches["throttle"].get(f"limit:rate_limit_token:address:{SCRIPT}") == limit.history


def test_a_limit_whose_store_is_away_lets_requests_through_and_says_so(caplog):
    # Found by the chaos soak: with Redis restarting, bookings answered 500. The throttle cache
    # pointed at a port where nothing listens.
    away = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "throttle": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        },
    }
    rider = rider_make("during-outage")
    headers = bearer(rider.user)
    with override_settings(CACHES=away, RATE_LIMIT_BOOKING="1/m"):
        answers = [quote(headers).status_code for _ in range(3)]

    assert answers == [201, 201, 201]
    assert "the count cannot be kept" in caplog.text
