"""The capture checkpoint end to end on real Kafka, Redis and PostgreSQL: trips completed in the
booking ask for their capture verdict through the outbox; the capture scorer serves each the
driver's features and decides; the booking's verdicts consumer captures the fare of a clean
driver's trip and holds the one of a driver whose trips were just charged back."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from events.backends.kafka import KafkaBus
from events.contracts import TOPICS, PaymentCaptureRequested
from events.models import OutboxEvent
from events.registry import consumer_spec
from events.relay import relay_once
from events.runner import ConsumerRunner
from features.definitions import FRAUD_CAPTURE_V1
from fraud.models import FraudScore, ReviewItem
from fraud.scorer import Scorer, ScorerSettings
from rideshare import services
from rideshare.models import Payment
from tests.features.streams import applied_config
from tests.fraud.test_capture_scorer import SIGNAL, _capture_champion, _chargebacks_applied
from tests.rideshare.factories import driver_make, trip_make

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]


def _completed(driver, now):
    trip = trip_make(now=now - timedelta(minutes=30))
    trip = services.trip_assign(trip=trip, driver=driver, now=now - timedelta(minutes=29))
    trip = services.trip_pick_up(trip=trip, driver=driver, now=now - timedelta(minutes=25))
    return services.trip_complete(trip=trip, driver=driver, now=now)


def test_a_completed_trip_is_captured_or_held_by_the_capture_scorer_over_kafka(
    kafka_bootstrap, redis_url, tmp_path, settings
):
    settings.RIDESHARE_CAPTURE_WAIT_SECONDS = 120
    config = applied_config(tmp_path / "store", online="redis", redis_url=redis_url)
    _capture_champion(tmp_path)
    now = timezone.now()
    bad_driver, good_driver = driver_make(), driver_make()
    # Six fraud chargebacks on the bad driver's earlier trips, received an hour ago.
    _chargebacks_applied(config, str(bad_driver.public_id), 6, at=now, namespace="")

    held_trip = _completed(bad_driver, now)
    captured_trip = _completed(good_driver, now)
    for trip in (held_trip, captured_trip):
        assert Payment.objects.get(trip=trip).status == "authorized"  # waiting for the verdict
    assert OutboxEvent.objects.filter(topic=PaymentCaptureRequested.topic).count() == 2

    bus = KafkaBus(bootstrap_servers=kafka_bootstrap, timeout_s=10)
    bus.ensure_topics(list(TOPICS), partitions=3)
    producer = bus.producer()
    relay_once(producer)
    producer.close()

    scorer = Scorer(
        bus=bus,
        config=config,
        settings=ScorerSettings(service=FRAUD_CAPTURE_V1.name, feature_timeout_s=5.0),
        group=f"capture-{uuid.uuid4().hex[:8]}",
    )
    scorer.run(until_idle_s=3)
    assert scorer.stats.scored == 2
    scores = {s.payment_id: s for s in FraudScore.objects.filter(checkpoint="capture")}
    held = scores[str(held_trip.payment.public_id)]
    assert held.decision == "review"
    assert held.reasons[0]["feature"] == SIGNAL
    assert scores[str(captured_trip.payment.public_id)].decision == "approve"
    assert ReviewItem.objects.get().score_id == held.id

    spec = consumer_spec("booking-verdicts")
    verdicts = ConsumerRunner(
        type(spec)(
            name=f"verdicts-{uuid.uuid4().hex[:8]}", handler=spec.handler, topics=spec.topics
        ),
        bus,
    )
    verdicts.run(idle_timeout_s=3)
    held_payment = Payment.objects.get(trip=held_trip)
    captured_payment = Payment.objects.get(trip=captured_trip)
    assert (held_payment.status, held_payment.capture_held, held_payment.capture_decision) == (
        "authorized", True, "review",
    )  # fmt: skip
    assert (captured_payment.status, captured_payment.captured_cents) == (
        "captured", captured_trip.fare_cents,
    )  # fmt: skip
