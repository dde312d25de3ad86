import os

import pytest

from rideshare.services import staff_user_ensure

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_chromium_loads_the_home_page_and_logs_in_to_the_admin(live_server, page, artifacts_dir):
    page.goto(live_server.url + "/")

    assert page.title() == "Rideshare"
    assert page.locator("h1").inner_text() == "Rideshare"
    # The vendored stylesheet was served and applied (no CDN involved).
    top_bar = page.locator(".topbar").evaluate("el => getComputedStyle(el).backgroundColor")
    assert top_bar == "rgb(11, 110, 79)"
    from django.db import connection

    database = page.locator("#platform-status dd").first
    assert database.inner_text() == connection.vendor
    screenshot = os.path.join(artifacts_dir, "home.png")
    page.screenshot(path=screenshot, full_page=True)
    assert os.path.getsize(screenshot) > 1000

    staff_user_ensure(username="analyst", password="a-long-demo-pass")
    page.get_by_role("link", name="Log in").click()
    page.fill("#id_username", "analyst")
    page.fill("#id_password", "a-long-demo-pass")
    page.get_by_role("button", name="Log in").click()

    page.wait_for_url("**/admin/")
    assert "Site administration" in page.content()
    page.screenshot(path=os.path.join(artifacts_dir, "admin.png"))


def test_wrong_password_is_refused_with_a_message(live_server, page):
    staff_user_ensure(username="analyst", password="a-long-demo-pass")
    page.goto(live_server.url + "/admin/login/")
    page.fill("#id_username", "analyst")
    page.fill("#id_password", "wrong")
    page.get_by_role("button", name="Log in").click()

    assert "Please enter the correct username and password" in page.content()
    assert page.url.endswith("/admin/login/")
