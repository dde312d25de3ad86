"""Bookings made through the REST API reach real Kafka through the outbox, each exactly once at
an idempotent consumer, even when the relay dies between the broker's ack and the marking."""

import uuid

import pytest
from django.test import Client

from events.backends.kafka import KafkaBus
from events.contracts import TOPICS
from events.models import LedgerEntry, OutboxEvent, ProcessedEvent
from events.relay import relay_once
from events.runner import ConsumerRunner
from tests.events.factories import ledger_spec
from tests.rideshare.factories import (
    DROPOFF,
    PICKUP,
    VISA_DECLINED,
    VISA_OK,
    card_make,
    rider_make,
)

pytestmark = [pytest.mark.kafka, pytest.mark.django_db]


def api_client(rider) -> Client:
    client = Client(HTTP_X_DEVICE_ID="device-a")
    response = client.post(
        "/api/auth/token",
        {"username": rider.user.username, "password": "pw-" + rider.user.username},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {response.json()['token']}"
    return client


def book(client: Client, card) -> int:
    return client.post(
        "/api/trips",
        {
            "card_id": str(card.public_id),
            "pickup": {"lat": PICKUP.lat, "lng": PICKUP.lng},
            "dropoff": {"lat": DROPOFF.lat, "lng": DROPOFF.lng},
        },
        content_type="application/json",
    ).status_code


def test_committed_bookings_reach_kafka_exactly_once_at_the_consumer(kafka_bootstrap):
    rider = rider_make()
    good, declined = card_make(rider, VISA_OK), card_make(rider, VISA_DECLINED)
    client = api_client(rider)
    before_bad = OutboxEvent.objects.count()
    bad = client.post(
        "/api/trips",
        {"card_id": str(good.public_id), "pickup": {"lat": 10.0, "lng": 10.0}, "dropoff": None},
        content_type="application/json",
    )
    assert bad.status_code == 422
    assert OutboxEvent.objects.count() == before_bad  # a refused booking publishes nothing

    statuses = [book(client, good) for _ in range(20)] + [book(client, declined)]

    assert statuses == [201] * 20 + [402]
    committed = {str(e) for e in OutboxEvent.objects.values_list("event_id", flat=True)}
    topics = set(OutboxEvent.objects.values_list("topic", flat=True))
    assert {"payments.authorized.v1", "trips.requested.v1", "payments.declined.v1"} <= topics

    bus = KafkaBus(bootstrap_servers=kafka_bootstrap, timeout_s=10)
    bus.ensure_topics(list(TOPICS), partitions=3)
    producer = bus.producer()

    def killed(rows):
        raise SystemExit("relay killed after the broker acknowledged, before marking")

    with pytest.raises(SystemExit):
        relay_once(producer, after_publish=killed)
    assert OutboxEvent.objects.filter(published_at__isnull=True).count() == len(committed)
    assert relay_once(producer).published == len(committed)
    producer.close()

    group = f"ledger-{uuid.uuid4().hex[:10]}"
    stats = ConsumerRunner(ledger_spec(group), bus).run(idle_timeout_s=3)

    seen = LedgerEntry.objects.filter(event_id__in=committed)
    assert {str(e) for e in seen.values_list("event_id", flat=True)} == committed
    assert seen.count() == len(committed)
    assert ProcessedEvent.objects.filter(consumer=group, event_id__in=committed).count() == len(
        committed
    )
    # Every event was on the stream twice (the killed relay's send and the retry's).
    assert stats.duplicates >= len(committed)
