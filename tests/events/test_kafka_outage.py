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
from tests.conftest import service_unavailable
from tests.events.test_outbox_relay import book, ledger

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture
def own_broker():
    try:
        broker = kafka_service.start()
    except ServiceError as exc:
        service_unavailable("kafka", exc.reason)
    yield broker
    broker.stop()


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.django_db(transaction=True)
def test_200_bookings_while_kafka_is_down_all_arrive_once_after_restart(own_broker):
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

        events = book(200)

        assert OutboxEvent.objects.count() == 200
        time.sleep(2)  # the relay is retrying against a dead broker meanwhile
        assert outbox_backlog().events == 200

        restarted = kafka_service.start(workdir=own_broker.workdir)
        own_broker.process = restarted.process
        assert wait_for(lambda: outbox_backlog().events == 0, timeout=90), outbox_backlog()
    finally:
        stop.set()
        relay.join(timeout=30)

    stats = ledger(bus, "outage-ledger").run(idle_timeout_s=3)

    assert stats.applied == 200
    assert LedgerEntry.objects.count() == 200
    assert set(LedgerEntry.objects.values_list("event_id", flat=True)) == {
        e.event_id for e in events
    }


def test_a_missing_broker_fails_fast_with_a_message_naming_it():
    address = f"127.0.0.1:{free_port()}"
    bus = KafkaBus(bootstrap_servers=address, timeout_s=2)

    with pytest.raises(BusUnavailable) as caught:
        bus.producer()

    assert f"Kafka at {address} did not answer (producer) within 2 s" in str(caught.value)
