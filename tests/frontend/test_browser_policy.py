"""Lists and rules in Chromium: an analyst lists a device, writes a rule that is refused with
its place, fixes it, backtests it, saves it in shadow and switches it on."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from fraud.models import ListEntry, Rule
from fraud.services.reviews import analyst_ensure
from tests.frontend.test_browser_rider import _log_in, _screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_analyst_lists_a_device_and_writes_a_rule_with_a_backtest(
    asgi_server, page, artifacts_dir
):
    analyst_ensure(username="ana", password="ana-pass")
    _log_in(page, asgi_server, "ana", "ana-pass")
    page.get_by_role("link", name="Rules").click()
    page.get_by_role("link", name="Lists").click()
    form = page.locator("#entry-form")
    form.get_by_label("Kind").select_option("device")
    form.get_by_label("Id or address").fill("dev-emulator-7")
    form.get_by_label("Action").select_option("review")
    form.get_by_label("Reason").fill("emulator farm seen in chargebacks")
    form.get_by_label("Expires in (days)").fill("30")
    form.get_by_role("button", name="Add to list").click()
    expect(page.locator(".flash")).to_contain_text("Device dev-emulator-7 is on the review list.")
    expect(page.locator("#entries")).to_contain_text("emulator farm seen in chargebacks")
    expect(page.locator("#entries")).to_contain_text("in 4")  # weeks, in the viewer's words
    assert ListEntry.objects.get().stage == "before"

    page.goto(f"{asgi_server.url}/fraud/rules/")
    rule = page.locator("#rule-form")
    rule.get_by_label("Name").fill("velocity burst")
    page.locator("#expression").fill("card_payments_10m >= and amount_cents > 3000")
    rule.get_by_role("button", name="Save rule").click()
    expect(page.locator("#expression-error")).to_contain_text("Syntax error at character 22")
    # The caret stands under the place of the error.
    caret = page.locator("pre.caret").inner_text().splitlines()[-1]
    assert caret == " " * 21 + "^"
    _screenshot(page, artifacts_dir, "rule-refused.png")
    assert not Rule.objects.exists()

    page.locator("#expression").fill("card_payments_10m >= 5 and amount_cents > 3000")
    rule.get_by_role("button", name="Backtest").click()
    expect(page.locator("#backtest")).to_contain_text("0 payments scored")
    expect(page.locator("#bt-hits")).to_have_text("0 payments")
    rule.get_by_role("button", name="Save rule").click()
    expect(page.locator(".flash")).to_contain_text("Rule 'velocity burst' saved (shadow")
    row = page.locator("#rules tbody tr")
    expect(row).to_contain_text("card_payments_10m >= 5 and amount_cents > 3000")
    row.get_by_role("button", name="Activate").click()
    expect(page.locator(".flash")).to_contain_text("is now active")
    assert Rule.objects.get().mode == "active"
    _screenshot(page, artifacts_dir, "rules.png")
