"""A fraud decline seen by the people it touches, in Chromium: the rider's trip page turns to
"we could not verify this payment" live, and the driver's console shows the trip released.

The verdict travels as in production: a ``fraud.scored.v1`` record on the event log, applied by
the registered ``booking-verdicts`` consumer in this process; its push reaches the server's
page through a Redis channel layer both processes share.
"""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import expect

from events.backends.embedded import EmbeddedBus
from events.bus import Record
from events.contracts import FraudScored
from events.registry import CONSUMERS, ConsumerSpec
from events.runner import ConsumerRunner
from rideshare import services
from rideshare.models import Payment
from tests.frontend.test_browser_rider import LIVE_TIMEOUT_MS, _log_in, _screenshot
from tests.rideshare.factories import driver_make, rider_make, trip_make

pytestmark = [pytest.mark.browser, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def shared_channel_layer(settings, redis_url):
    """Give this process and the ASGI server (forked after this) one Redis channel layer."""
    from channels.layers import channel_layers

    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [redis_url], "prefix": f"test-{uuid.uuid4().hex[:8]}"},
        }
    }
    channel_layers.backends = {}
    yield
    channel_layers.backends = {}


def test_a_decline_cancels_the_trip_live_on_the_riders_page_and_frees_the_driver(
    shared_channel_layer, asgi_server, browser, page, artifacts_dir, tmp_path
):
    rider = rider_make()
    trip = trip_make(rider)
    driver = driver_make()
    services.trip_assign(trip=trip, driver=driver)
    _log_in(page, asgi_server, rider.user.username, f"pw-{rider.user.username}")
    page.goto(f"{asgi_server.url}/trips/{trip.public_id}/")
    expect(page.locator("#live-indicator")).to_have_text("Live", timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("#trip-status")).to_have_text("Driver on the way")
    page.evaluate("window.loadedOnce = true")

    payment = Payment.objects.select_related("card", "rider").get(trip=trip)
    verdict = FraudScored(
        payment_id=str(payment.public_id),
        payment_event_id=uuid.uuid4(),
        card_id=str(payment.card.public_id),
        rider_id=str(payment.rider.public_id),
        score=0.97,
        decision="decline",
        model_version="test-model",
    )
    bus = EmbeddedBus(tmp_path / "event-log.sqlite3")
    topic = f"test-{uuid.uuid4().hex[:8]}.{FraudScored.topic}"
    bus.ensure_topics([topic], partitions=1)
    producer = bus.producer()
    assert producer.publish([Record(topic, verdict.encode(), key=verdict.key())]) == [None]
    producer.close()
    registered = CONSUMERS["booking-verdicts"]
    spec = ConsumerSpec(name=registered.name, handler=registered.handler, topics=(topic,))
    assert ConsumerRunner(spec, bus).run(idle_timeout_s=2).applied == 1

    expect(page.locator("#trip-status")).to_have_text("Cancelled", timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("#payment-risk")).to_contain_text(
        "We could not verify this payment, so we cancelled the trip and released the driver. "
        "Nothing was charged."
    )
    expect(page.locator("#payment-risk").get_by_role("link", name="Book again")).to_be_visible()
    expect(page.locator("#cancel-button")).to_have_count(0)
    assert page.evaluate("window.loadedOnce") is True
    _screenshot(page, artifacts_dir, "trip-payment-risk.png")

    driver_context = browser.new_context(viewport={"width": 1200, "height": 800})
    try:
        console = driver_context.new_page()
        _log_in(console, asgi_server, driver.user.username, "driver-pass")
        expect(console.locator("#active-trip")).to_contain_text("No trip under way")
        expect(console.locator("table.trips")).to_contain_text(
            "the rider's payment could not be verified; you are free for the next trip"
        )
        _screenshot(console, artifacts_dir, "driver-payment-risk.png")
    finally:
        driver_context.close()
