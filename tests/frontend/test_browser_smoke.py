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


def test_the_content_security_policy_refuses_an_inline_script(live_server, page):
    response = page.goto(live_server.url + "/")
    policy = response.headers["content-security-policy"]

    injected = page.evaluate(
        """() => {
            const script = document.createElement("script");
            script.textContent = "window.injected = true";
            document.body.appendChild(script);
            return window.injected === true;
        }"""
    )

    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert injected is False
    page.wait_for_timeout(100)  # the console's report arrives after the refusal
    assert any("script-src" in text for text in page.csp_refused)
    page.csp_refused.clear()  # provoked here: not a page's fault


def test_the_api_docs_render_under_the_policy(live_server, page):
    # Swagger UI from ninja's bundled files: its settings are a JSON block, its code files.
    page.goto(live_server.url + "/api/docs")

    page.locator(".swagger-ui .opblock").first.wait_for()
    assert "Create an API token" in page.content()
