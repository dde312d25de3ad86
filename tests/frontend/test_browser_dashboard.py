"""The fraud dashboard in Chromium: it draws its charts from the first snapshot and redraws
when a new flag is scored, live (the flags websocket, whose consumer reads the database)."""

from __future__ import annotations

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from fraud.services.reviews import analyst_ensure
from tests.fraud.live_factories import score_make
from tests.frontend.test_browser_rider import LIVE_TIMEOUT_MS, _log_in, _screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_dashboard_draws_and_redraws_when_a_flag_arrives(asgi_server, page, artifacts_dir):
    now = timezone.now()
    for decision in ("approve", "approve", "review"):
        score_make(decision=decision, scored_at=now)
    analyst_ensure(username="ana", password="ana-pass")
    _log_in(page, asgi_server, "ana", "ana-pass")
    page.get_by_role("link", name="Dashboard").click()
    expect(page.locator("#live-indicator")).to_have_text("Live", timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("#tile-flagged")).to_have_text("33.3%")
    drawn = page.locator("#dashboard")
    expect(drawn).to_have_attribute("data-drawn", "1")
    # Every chart has a canvas Chart.js drew into.
    assert page.evaluate("Object.keys(Chart.instances).length") == 7
    _screenshot(page, artifacts_dir, "fraud-dashboard.png")

    score_make(decision="decline", scored_at=timezone.now())
    expect(page.locator("#tile-flagged")).to_have_text("50%", timeout=LIVE_TIMEOUT_MS)
    assert int(drawn.get_attribute("data-drawn")) >= 2
