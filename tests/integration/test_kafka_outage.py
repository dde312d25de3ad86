"""With Kafka down, bookings still commit; when it is back the relay drains the backlog and
an idempotent consumer sees every event exactly once. A dedicated broker, so stopping it
disturbs no other test."""

import threading
import time

import pytest
from django.db import connection

from devservices import ServiceError
from devservices import kafka as kafka_service
from devservices.base import free_port
from events.backends.kafka import KafkaBus
from events.bus import BusUnavailable
from events.contracts import TOPICS
from events.models import LedgerEntry, OutboxEvent
from events.outbox import outbox_backlog
from events.relay import Backoff, relay_run
from events.runner import ConsumerRunner
from tests.conftest import service_unavailable
from tests.events.factories import ledger_spec
from tests.polling import wait_for
from tests.rideshare.factories import card_make, rider_make, trip_make

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture
def own_broker():
    try:
        broker = kafka_service.start()
    except ServiceError as exc:
        service_unavailable("kafka", exc.reason)
    yield broker
    broker.stop()


@pytest.mark.django_db(transaction=True)
def test_200_bookings_while_kafka_is_down_all_arrive_once_after_restart(own_broker):
    """The relay keeps retrying while the broker is down; nothing blocks the bookings."""
    bus = KafkaBus(bootstrap_servers=own_broker.url, timeout_s=3)
    bus.ensure_topics(list(TOPICS), partitions=3)
    stop = threading.Event()

    def run_relay() -> None:
        try:
            relay_run(bus, stop=stop, partitions=3, backoff=Backoff(cap_s=1.0))
        finally:
            connection.close()  # this thread's own connection

    relay = threading.Thread(target=run_relay, daemon=True)
    relay.start()
    try:
        own_broker.stop(keep_data=True)

        rider = rider_make()
        card = card_make(rider)
        baseline = OutboxEvent.objects.count()
        trips = [trip_make(rider, card=card) for _ in range(200)]

        assert len(trips) == 200  # every booking succeeded with the broker down
        # each booking commits PaymentAuthorized and TripRequested
        assert OutboxEvent.objects.count() == baseline + 400
        committed = set(OutboxEvent.objects.values_list("event_id", flat=True))
        time.sleep(2)  # the relay is retrying against a dead broker meanwhile
        assert outbox_backlog().events == len(committed)

        restarted = kafka_service.start(workdir=own_broker.workdir)
        own_broker.process = restarted.process
        assert wait_for(lambda: outbox_backlog().events == 0, timeout=90), outbox_backlog()
    finally:
        stop.set()
        relay.join(timeout=30)

    stats = ConsumerRunner(ledger_spec("outage-ledger"), bus).run(idle_timeout_s=3)

    assert stats.applied == len(committed)
    # Records sent around the restart may have been resent (at-least-once on the wire);
    # the consumer applied each event once all the same.
    assert LedgerEntry.objects.count() == len(committed)
    assert set(LedgerEntry.objects.values_list("event_id", flat=True)) == committed


def test_a_missing_broker_fails_fast_with_a_message_naming_it():
    address = f"127.0.0.1:{free_port()}"
    bus = KafkaBus(bootstrap_servers=address, timeout_s=2)

    with pytest.raises(BusUnavailable) as caught:
        bus.producer()

    assert f"Kafka at {address} did not answer (producer) within 2 s" in str(caught.value)
