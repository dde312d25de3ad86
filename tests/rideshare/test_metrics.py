import pytest
from django.db import transaction

from events.outbox import outbox_publish
from tests.events.factories import trip_requested
from tests.scrape import sample

pytestmark = pytest.mark.django_db


def test_metrics_expose_the_outbox_backlog(client):
    with transaction.atomic():
        outbox_publish(trip_requested())
        outbox_publish(trip_requested())

    response = client.get("/metrics")

    assert response.status_code == 200
    text = response.content.decode()
    assert sample(text, "outbox_backlog_events") == 2
    assert sample(text, "outbox_oldest_age_seconds") >= 0
    # The web process's own figures come with them.
    assert sample(text, "process_resident_memory_bytes") > 0


@pytest.mark.parametrize("path", ["/metrics", "/metrics/features"])
def test_without_a_token_only_this_host_may_scrape(client, path):
    response = client.get(path, REMOTE_ADDR="203.0.113.9")

    assert response.status_code == 403
    assert response.content == b"Metrics are served to this host only.\n"


@pytest.mark.parametrize("path", ["/metrics", "/metrics/features"])
def test_with_a_token_a_scrape_must_send_it(client, settings, path):
    settings.METRICS_TOKEN = "scrape-secret"

    missing = client.get(path)
    wrong = client.get(path, headers={"Authorization": "Bearer scrape-guess"})

    assert missing.status_code == wrong.status_code == 401
    assert missing["WWW-Authenticate"] == 'Bearer realm="metrics"'


def test_the_right_token_scrapes_from_anywhere(client, settings):
    settings.METRICS_TOKEN = "scrape-secret"

    response = client.get(
        "/metrics", REMOTE_ADDR="203.0.113.9", headers={"Authorization": "Bearer scrape-secret"}
    )

    assert response.status_code == 200
    assert sample(response.content.decode(), "outbox_backlog_events") == 0


def test_behind_a_tls_proxy_a_scrape_needs_the_token_even_from_this_host(client, settings):
    # Every request arrives from the proxy's address: loopback proves nothing there.
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

    response = client.get("/metrics")

    assert response.status_code == 403
    assert b"set METRICS_TOKEN" in response.content
