"""Pushes that cross processes, as in production: the page in Chromium is served by a Daphne
process of its own, the change happens in this process (the scorer's ``FlagPusher``, a driver's
step through the trip services), and the message goes from one to the other through the Redis
channel layer on a real Redis, nothing else.

The in-memory layer the other browser tests use cannot carry a message to another process, so
these are the only tests of the layer that ``REDIS_URL`` selects in a deployment."""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import expect

from fraud import consumers
from fraud.live import FlagPusher
from rideshare import services
from tests.fraud.live_factories import score_make
from tests.rideshare.factories import driver_make, rider_make, trip_make

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LIVE_TIMEOUT_MS = 20_000
# How long a flag that was not pushed is watched for, to show the page gets none without one.
QUIET_MS = 3_000


@pytest.fixture
def redis_layer(settings, redis_url, monkeypatch):
    """The Redis channel layer, in this process and in the server forked after it."""
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # A prefix of its own: groups of another test's server never hear these messages.
            "CONFIG": {"hosts": [redis_url], "prefix": f"push-{uuid.uuid4().hex[:8]}"},
        }
    }
    # The flags page also reads the database about once a second; with that off in the server,
    # a flag can reach the page only by the push.
    monkeypatch.setattr(consumers, "TAIL_SECONDS", 3600.0)


@pytest.fixture
def server(redis_layer, asgi_server):
    """The ASGI server, forked once the Redis layer is configured."""
    return asgi_server


def _log_in(page, server, username: str, password: str, then: str) -> None:
    page.goto(server.url + then)
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(server.url + then)


def test_the_scorers_push_reaches_the_analysts_page_through_redis(server, page, django_user_model):
    django_user_model.objects.create_user("analyst", password="analyst-pass", is_staff=True)
    _log_in(page, server, "analyst", "analyst-pass", then="/fraud/")
    expect(page.locator("#live-indicator")).to_have_text("Live", timeout=LIVE_TIMEOUT_MS)
    page.evaluate("window.loadedOnce = true")

    # Committed and not pushed: the page does not hear of it.
    flagged = score_make(decision="decline", card_id="card-eeee5555", amount_cents=4200)
    page.wait_for_timeout(QUIET_MS)
    expect(page.locator(f"#flag-{flagged.id}")).to_have_count(0)

    pusher = FlagPusher()
    try:
        pusher.push([flagged.id])
        row = page.locator(f"#flag-{flagged.id}")
        expect(row).to_contain_text("Decline", timeout=LIVE_TIMEOUT_MS)
        expect(row).to_contain_text("€42.00")
        expect(row).to_contain_text("•••• 5555")

        # A second flag, pushed while the first is on the page, arrives above it.
        second = score_make(decision="review", card_id="card-ffff6666")
        pusher.push([second.id])
        expect(page.locator(f"#flag-{second.id}")).to_contain_text(
            "•••• 6666", timeout=LIVE_TIMEOUT_MS
        )
        expect(page.locator("#flag-rows tr").first).to_have_attribute("id", f"flag-{second.id}")
    finally:
        pusher.close()
    assert pusher.dropped == 0
    assert page.evaluate("window.loadedOnce") is True


def test_a_drivers_step_in_another_process_reaches_the_riders_page_through_redis(server, page):
    rider = rider_make()
    trip = trip_make(rider)
    driver = driver_make(zone="Z-2-2")
    username = rider.user.username
    _log_in(page, server, username, f"pw-{username}", then=f"/trips/{trip.public_id}/")
    expect(page.locator("#live-indicator")).to_have_text("Live", timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("#trip-status")).to_have_text("Looking for a driver")
    page.evaluate("window.loadedOnce = true")

    # The trip services push after the commit, from this process, through Redis.
    services.trip_assign(trip=trip, driver=driver)

    expect(page.locator("#trip-status")).to_have_text("Driver on the way", timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("#trip-driver")).to_contain_text(driver.name)
    assert page.evaluate("window.loadedOnce") is True
