import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from rideshare.services import staff_user_ensure

pytestmark = pytest.mark.django_db


def test_healthz_reports_the_backends(client, settings):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["database"]["ok"] is True
    assert body["event_bus"] == settings.EVENT_BUS
    # Redis carries the pushes between processes whenever there is one (REDIS_URL).
    expected = "RedisChannelLayer" if settings.REDIS_URL else "InMemoryChannelLayer"
    assert body["channel_layer"] == expected
    assert body["celery_broker"] == settings.CELERY_BROKER_URL.split(":", 1)[0]


def test_home_page_renders_the_deployment_status(client):
    response = client.get("/")
    assert response.status_code == 200
    assert b"<h1>Rideshare</h1>" in response.content
    assert b'id="platform-status"' in response.content


def test_staff_user_ensure_is_idempotent_on_the_name():
    first = staff_user_ensure(username="ops", password="first-pass-123")
    second = staff_user_ensure(username="ops", password="second-pass-456")
    assert first.pk == second.pk
    assert get_user_model().objects.filter(username="ops").count() == 1
    second.refresh_from_db()
    assert second.is_staff
    assert second.is_superuser
    assert second.check_password("second-pass-456")


def test_seed_demo_refuses_outside_debug(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="only with DJANGO_DEBUG=true"):
        call_command("seed_demo")
    assert not get_user_model().objects.exists()


def test_seed_demo_creates_the_staff_account(settings):
    settings.DEBUG = True
    call_command("seed_demo", "--username", "demo", "--password", "demo-pass")
    user = get_user_model().objects.get(username="demo")
    assert user.is_staff
    assert user.check_password("demo-pass")
