"""kill -9 the relay and the consumer mid-stream, restart them: no event lost, none applied
twice. Real processes (``manage.py relay`` / ``manage.py consume``), real Kafka, real PostgreSQL.
"""

import uuid
from collections import Counter

import pytest
from django.db import transaction

from events.backends.kafka import KafkaBus
from events.bus import Record
from events.contracts import TOPICS, decode
from events.models import LedgerEntry, OutboxEvent, ProcessedEvent
from events.outbox import outbox_publish
from tests.events.bus_helpers import drain
from tests.events.factories import payment_authorized
from tests.polling import wait_for
from tests.processes import database_env, kill9, manage_env, manage_start, manage_stop

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TOPIC = "payments.authorized.v1"


def process_env(kafka_bootstrap: str) -> dict[str, str]:
    """Environment pointing a child process at this test's database and broker."""
    return manage_env(**database_env(), EVENT_BUS="kafka", KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap)


def test_relay_killed_mid_drain_loses_nothing(kafka_bootstrap, tmp_path):
    env = process_env(kafka_bootstrap)
    events = []
    # Enough that the drain outlasts the polls: the relay publishes ~6,500 events a second, so
    # 3,000 were mid-drain for only 0.2-0.35 s, which a busy machine's poll could miss.
    for _ in range(100):
        with transaction.atomic():
            for _ in range(100):
                event = payment_authorized(card_id=f"card-{uuid.uuid4().hex[:6]}")
                outbox_publish(event)
                events.append(event)
    ours = {e.event_id for e in events}
    pending = OutboxEvent.objects.filter(event_id__in=ours, published_at__isnull=True)

    relay = manage_start(["relay", "--batch-size", "100"], env, tmp_path / "relay.log")
    try:
        # Killed once more than 500 are published and some are not.
        assert wait_for(lambda: 0 < pending.count() < len(events) - 500, 60, interval=0.02), (
            tmp_path / "relay.log"
        ).read_text()
        kill9(relay)
        left_after_kill = pending.count()
        assert left_after_kill > 0
        relay = manage_start(["relay"], env, tmp_path / "relay.log")
        assert wait_for(lambda: pending.count() == 0, 90), (tmp_path / "relay.log").read_text()
    finally:
        manage_stop(relay, tmp_path / "relay.log")

    # Every event committed is in the topic, at least once (the ones in flight when the relay
    # died are sent again): read the whole topic (other tests write to it too) and look for
    # each of ours by id.
    bus = KafkaBus(bootstrap_servers=kafka_bootstrap)
    total = sum(bus.end_offsets("payments.authorized.v1").values())
    consumer = bus.consumer(group=f"crash-check-{uuid.uuid4().hex[:8]}", topics=[TOPIC])
    try:
        read = [decode(m.topic, m.value).event_id for m in drain(consumer, total, timeout=90)]
    finally:
        consumer.close()
    assert len(read) == total
    found = Counter(i for i in read if i in ours)
    assert set(found) == ours, f"{len(ours - set(found))} committed events never published"
    # Resent, not lost: only the batch in flight at the kill can have gone out twice.
    assert sum(found.values()) - len(ours) <= left_after_kill


def test_consumer_killed_mid_stream_applies_every_event_exactly_once(kafka_bootstrap, tmp_path):
    env = process_env(kafka_bootstrap)
    bus = KafkaBus(bootstrap_servers=kafka_bootstrap)
    bus.ensure_topics(list(TOPICS), partitions=3)
    events = [payment_authorized(card_id=f"card-{i % 40}") for i in range(6000)]
    producer = bus.producer()
    assert all(
        r is None
        for r in producer.publish([Record(e.topic, e.encode(), key=e.key()) for e in events])
    )
    producer.close()
    ours = {e.event_id for e in events}
    applied = LedgerEntry.objects.filter(event_id__in=ours)

    # Small batches: with its default of 500 a batch, the ledger applied all 3,000 events
    # between two looks at its progress (0.1 s apart) and the kill came after the stream.
    small = ["consume", "event-ledger", "--max-records", "25"]
    consumer = manage_start(small, env, tmp_path / "consumer.log")
    try:
        assert wait_for(lambda: applied.count() >= 300, 90), (tmp_path / "consumer.log").read_text()
        kill9(consumer)
        at_kill = applied.count()
        assert at_kill < len(ours)
        consumer = manage_start(small, env, tmp_path / "consumer.log")
        assert wait_for(lambda: applied.count() == len(ours), 120), (
            tmp_path / "consumer.log"
        ).read_text()
    finally:
        manage_stop(consumer, tmp_path / "consumer.log")

    assert applied.count() == len(ours)
    claims = ProcessedEvent.objects.filter(consumer="event-ledger", event_id__in=ours)
    assert claims.count() == len(ours)
