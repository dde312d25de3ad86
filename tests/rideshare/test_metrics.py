import pytest
from django.db import transaction

from events.outbox import outbox_publish
from tests.events.factories import trip_requested

pytestmark = pytest.mark.django_db


def test_metrics_expose_the_outbox_backlog(client):
    with transaction.atomic():
        outbox_publish(trip_requested())
        outbox_publish(trip_requested())

    response = client.get("/metrics")

    assert response.status_code == 200
    lines = response.content.decode().splitlines()
    assert "outbox_backlog_events 2" in lines
    age = next(line for line in lines if line.startswith("outbox_oldest_age_seconds "))
    assert float(age.split()[1]) >= 0
