"""The rider web UI in Chromium against the ASGI server: booking, cancelling, live status."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from rideshare import services
from rideshare.models import Trip
from tests.rideshare.factories import DROPOFF, PICKUP, driver_make, rider_make, trip_make

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LIVE_TIMEOUT_MS = 20_000


def _log_in(page, server, username: str, password: str) -> None:
    page.goto(server.url + "/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.get_by_role("button", name="Log in").click()


# Where a point of the city is on the booking page's map, in pixels from its top left corner.
TO_PIXELS = """([lat, lng]) =>
    document.getElementById("map").leafletMap.latLngToContainerPoint([lat, lng])"""


def _click_map(page, lat: float, lng: float) -> None:
    point = page.evaluate(TO_PIXELS, [lat, lng])
    page.locator("#map").click(position={"x": point["x"], "y": point["y"]})


def _screenshot(page, artifacts_dir: str, name: str) -> None:
    path = os.path.join(artifacts_dir, name)
    page.screenshot(path=path, full_page=True)
    assert os.path.getsize(path) > 1000


def _rider_with_trip(*, assigned_minutes_ago: float | None = None) -> tuple[str, str]:
    """Return the username and trip id of a new rider's requested trip, assigned to a driver
    ``assigned_minutes_ago`` if given.
    """
    rider = rider_make()
    if assigned_minutes_ago is None:
        trip = trip_make(rider)
    else:
        assigned_at = timezone.now() - timedelta(minutes=assigned_minutes_ago)
        trip = trip_make(rider, now=assigned_at - timedelta(minutes=1))
        services.trip_assign(trip=trip, driver=driver_make(), now=assigned_at)
    return rider.user.username, str(trip.public_id)


def test_a_new_rider_signs_up_adds_a_card_and_books_a_ride(asgi_server, page, artifacts_dir):
    page.goto(asgi_server.url + "/")
    page.get_by_role("link", name="Sign up").click()
    page.fill("#id_username", "nina")
    page.fill("#id_password", "correct-horse-battery")
    page.fill("#id_password_confirm", "correct-horse-battery")
    page.get_by_role("button", name="Sign up").click()

    expect(page).to_have_url(asgi_server.url + "/wallet/")
    page.fill("#id_number", "4242 4242 4242 4241")
    page.select_option("#id_exp_month", "12")
    page.fill("#id_exp_year", "2099")
    page.fill("#id_cvc", "123")
    page.get_by_role("button", name="Add card").click()
    expect(page.locator("#id_number_error")).to_have_text(
        "This card number is not valid: check it for a typing mistake."
    )
    # The number and the code are not sent back: the rider types them again.
    expect(page.locator("#id_number")).to_have_value("")
    expect(page.locator("#id_cvc")).to_have_value("")
    expect(page.locator("#id_exp_year")).to_have_value("2099")
    _screenshot(page, artifacts_dir, "wallet-error.png")
    page.fill("#id_number", "4242 4242 4242 4242")
    page.select_option("#id_exp_month", "12")
    page.fill("#id_exp_year", "2099")
    page.fill("#id_cvc", "123")
    page.get_by_role("button", name="Add card").click()
    expect(page.locator(".flash")).to_have_text("Added your visa card ending 4242.")
    expect(page.locator(".pay-card")).to_contain_text("•••• 4242")
    assert "4242 4242 4242 4242" not in page.content()
    _screenshot(page, artifacts_dir, "wallet.png")

    page.get_by_role("link", name="Book a ride").first.click()
    expect(page.locator(".zone-label")).to_have_count(36)
    _click_map(page, 52.36, 4.78)
    expect(page.locator("#map-message")).to_have_text(
        "That point is outside the city. Pick a point inside the zones."
    )
    _click_map(page, PICKUP.lat, PICKUP.lng)
    expect(page.locator("#pickup-text")).to_contain_text("zone Z-1-1")
    _click_map(page, DROPOFF.lat, DROPOFF.lng)
    expect(page.locator("#dropoff-text")).to_contain_text("zone Z-4-4")
    expect(page.locator("#fare")).to_have_text("€20.14")
    expect(page.locator("#card_id")).to_contain_text("Visa •••• 4242")
    _screenshot(page, artifacts_dir, "book.png")

    page.get_by_role("button", name="Book this ride").click()
    page.wait_for_url("**/trips/*/")
    trip = Trip.objects.get(rider__user__username="nina")
    assert page.url == f"{asgi_server.url}/trips/{trip.public_id}/"
    assert (trip.status, trip.fare_cents, trip.pickup_zone) == ("requested", 2014, "Z-1-1")
    expect(page.locator("#trip-status")).to_have_text("Looking for a driver")
    expect(page.locator("#live-indicator")).to_have_text("Live", timeout=LIVE_TIMEOUT_MS)
    _screenshot(page, artifacts_dir, "trip.png")


def test_cancelling_before_a_driver_is_assigned_is_free(asgi_server, page, artifacts_dir):
    username, trip_id = _rider_with_trip()
    _log_in(page, asgi_server, username, f"pw-{username}")
    page.goto(f"{asgi_server.url}/trips/{trip_id}/")

    page.get_by_role("link", name="Cancel trip").click()
    expect(page.locator("#fee-warning")).to_have_text("Cancelling now is free.")
    page.get_by_role("button", name="Yes, cancel my trip").click()

    expect(page.locator(".flash")).to_have_text("Trip cancelled. Nothing was charged.")
    expect(page.locator("#trip-status")).to_have_text("Cancelled")
    expect(page.get_by_role("link", name="Cancel trip")).to_have_count(0)
    trip = Trip.objects.get(public_id=trip_id)
    assert (trip.status, trip.cancellation_fee_cents, trip.payment.status) == (
        "cancelled",
        0,
        "voided",
    )
    _screenshot(page, artifacts_dir, "cancelled-free.png")
    page.get_by_role("link", name="My trips", exact=True).click()
    row = page.locator(f'tr[data-trip-id="{trip_id}"]')
    expect(row).to_contain_text("Cancelled")
    expect(row).to_contain_text("€0.00")
    expect(row.get_by_role("link", name="Receipt")).to_have_count(0)
    _screenshot(page, artifacts_dir, "trips.png")


def test_a_late_cancellation_shows_the_fee_which_must_be_confirmed(
    asgi_server, page, artifacts_dir
):
    username, trip_id = _rider_with_trip(assigned_minutes_ago=3)
    _log_in(page, asgi_server, username, f"pw-{username}")
    page.goto(f"{asgi_server.url}/trips/{trip_id}/")
    expect(page.locator("#trip-status")).to_have_text("Driver on the way")

    page.get_by_role("link", name="Cancel trip").click()
    warning = page.locator("#fee-warning")
    expect(warning).to_contain_text("Cancelling now costs €5.00.")
    expect(warning).to_contain_text("charged to your Visa card ending 4242")
    _screenshot(page, artifacts_dir, "cancel-fee-warning.png")
    # Backing out charges nothing.
    page.get_by_role("link", name="Keep my trip").click()
    expect(warning).to_have_count(0)
    assert Trip.objects.get(public_id=trip_id).status == "driver_assigned"

    page.get_by_role("link", name="Cancel trip").click()
    page.get_by_role("button", name="Cancel and pay €5.00").click()
    expect(page.locator(".flash")).to_have_text(
        "Trip cancelled. A cancellation fee of €5.00 was charged."
    )
    trip = Trip.objects.get(public_id=trip_id)
    assert (trip.status, trip.cancellation_fee_cents, trip.payment.captured_cents) == (
        "cancelled",
        500,
        500,
    )
    page.get_by_role("link", name="View receipt").click()
    expect(page.locator(".total")).to_contain_text("Cancellation fee €5.00")


def test_the_trip_page_follows_the_driver_live_and_catches_up_after_a_drop(
    asgi_server, browser, page, artifacts_dir
):
    username, trip_id = _rider_with_trip()
    driver = driver_make(zone="Z-2-2")
    _log_in(page, asgi_server, username, f"pw-{username}")
    page.goto(f"{asgi_server.url}/trips/{trip_id}/")
    expect(page.locator("#live-indicator")).to_have_text("Live", timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("#trip-status")).to_have_text("Looking for a driver")
    # A page that reloaded would lose this.
    page.evaluate("window.loadedOnce = true")

    driver_context = browser.new_context(viewport={"width": 1200, "height": 800})
    try:
        console = driver_context.new_page()
        _log_in(console, asgi_server, driver.user.username, "driver-pass")
        expect(console).to_have_url(asgi_server.url + "/driver/")
        request = console.locator(f'[data-trip-id="{trip_id}"]')
        request.get_by_role("button", name="Accept").click()
        expect(console.locator(".flash")).to_have_text("Trip accepted: drive to the pickup.")
        _screenshot(console, artifacts_dir, "driver-console.png")

        expect(page.locator("#trip-status")).to_have_text("Driver on the way")
        expect(page.locator("#trip-driver")).to_contain_text(driver.name)
        expect(page.locator("#trip-driver")).to_contain_text(driver.vehicle_plate)
        assert page.evaluate("window.loadedOnce") is True
        _screenshot(page, artifacts_dir, "trip-live.png")

        # The server goes away; the rider is picked up meanwhile (no page hears of it).
        asgi_server.stop()
        expect(page.locator("#live-indicator")).to_have_text("Reconnecting…")
        services.trip_pick_up(trip=Trip.objects.get(public_id=trip_id), driver=driver)
        asgi_server.restart()
        expect(page.locator("#live-indicator")).to_have_text("Live", timeout=LIVE_TIMEOUT_MS)
        expect(page.locator("#trip-status")).to_have_text("On the way to your drop-off")
        assert page.evaluate("window.loadedOnce") is True

        console.reload()
        console.get_by_role("button", name="Complete").click()
        expect(console.locator(".flash")).to_have_text("Trip completed.")
    finally:
        driver_context.close()

    expect(page.locator("#trip-status")).to_have_text("Arrived")
    expect(page.locator("#live-indicator")).to_have_text("Trip over")
    page.get_by_role("link", name="View receipt").click()
    expect(page.locator(".total")).to_contain_text("Fare €20.14")
    expect(page.locator(".receipt")).to_contain_text("Visa •••• 4242")
    _screenshot(page, artifacts_dir, "receipt.png")
