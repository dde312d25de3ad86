"""The analyst's flagged payments page in Chromium against the ASGI server: flags arrive live."""

from __future__ import annotations

import os

import pytest
from playwright.sync_api import expect

from tests.fraud.live_factories import score_make

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LIVE_TIMEOUT_MS = 20_000


def _screenshot(page, artifacts_dir: str, name: str) -> None:
    path = os.path.join(artifacts_dir, name)
    page.screenshot(path=path, full_page=True)
    assert os.path.getsize(path) > 1000


def test_flags_appear_live_and_after_a_reconnect(
    asgi_server, page, artifacts_dir, django_user_model
):
    django_user_model.objects.create_user("analyst", password="analyst-pass", is_staff=True)
    first = score_make(decision="review", card_id="card-aaaa1111")
    score_make(decision="approve", card_id="card-bbbb2222")

    page.goto(asgi_server.url + "/fraud/")
    page.fill("#id_username", "analyst")
    page.fill("#id_password", "analyst-pass")
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(asgi_server.url + "/fraud/")
    expect(page.locator("#live-indicator")).to_have_text("Live", timeout=LIVE_TIMEOUT_MS)
    rows = page.locator("#flag-rows tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("•••• 1111")
    # A page that reloaded would lose this.
    page.evaluate("window.loadedOnce = true")

    # Scored in this process: the server's socket finds it in the database (its channel layer
    # is its own, so no push reaches it).
    live = score_make(decision="decline", card_id="card-cccc3333", amount_cents=9900)
    row = page.locator(f"#flag-{live.id}")
    expect(row).to_contain_text("Decline", timeout=LIVE_TIMEOUT_MS)
    expect(row).to_contain_text("€99.00")
    expect(row).to_contain_text("•••• 3333")
    expect(row).to_contain_text("9 payments on this card in the last 10 minutes")
    expect(rows).to_have_count(2)
    expect(rows.first).to_have_attribute("id", f"flag-{live.id}")
    _screenshot(page, artifacts_dir, "fraud-flags-live.png")

    # The server goes away; a payment is flagged meanwhile.
    asgi_server.stop()
    expect(page.locator("#live-indicator")).to_have_text("Reconnecting…")
    missed = score_make(decision="review", card_id="card-dddd4444")
    asgi_server.restart()
    expect(page.locator("#live-indicator")).to_have_text("Live", timeout=LIVE_TIMEOUT_MS)
    expect(page.locator(f"#flag-{missed.id}")).to_contain_text("•••• 4444")
    expect(rows).to_have_count(3)
    ids = rows.evaluate_all("rows => rows.map(row => Number(row.dataset.flagId))")
    assert ids == [missed.id, live.id, first.id]
    assert page.evaluate("window.loadedOnce") is True
    expect(page.locator("#no-flags")).to_be_hidden()
    _screenshot(page, artifacts_dir, "fraud-flags-reconnected.png")
