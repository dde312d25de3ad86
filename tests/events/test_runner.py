import random

import pytest
from django.db import OperationalError

from events.bus import BusError, Record
from events.contracts import PaymentAuthorized, dead_letter_topic
from events.deadletters import DLQ_HEADERS
from events.models import LedgerEntry, ProcessedEvent
from events.runner import ConsumerRunner
from tests.events.bus_helpers import drain
from tests.events.factories import (
    ledger_handler_failing_on,
    ledger_spec,
    payment_authorized,
    poison_values,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(params=[False, True], ids=["one-by-one", "batch"])
def batch(request) -> bool:
    """Each test on both of the runner's ways: an event a transaction, or a batch at once."""
    return request.param


@pytest.mark.slow
def test_5000_events_with_1pct_poison_each_valid_applied_once_each_bad_dead_lettered(
    bus, new_topic, group, batch
):
    topic = new_topic(PaymentAuthorized.topic, partitions=3)
    rng = random.Random(7)
    poisons = poison_values()
    records, valid_ids, bad = [], [], []
    for i in range(5000):
        if i % 100 == 37:
            kind = rng.choice(sorted(poisons))
            records.append(Record(topic, poisons[kind], key=f"card-{i % 50}"))
            bad.append(kind)
        else:
            event = payment_authorized(card_id=f"card-{i % 50}")
            valid_ids.append(event.event_id)
            records.append(Record(topic, event.encode(), key=event.key()))
    producer = bus.producer()
    assert all(r is None for r in producer.publish(records))
    producer.close()

    runner = ConsumerRunner(ledger_spec(group, (topic,), batch=batch), bus)
    stats = runner.run(idle_timeout_s=3)

    assert stats.applied == 4950
    assert stats.dead_lettered == 50
    assert stats.duplicates == 0
    assert LedgerEntry.objects.count() == 4950
    assert set(LedgerEntry.objects.values_list("event_id", flat=True)) == set(valid_ids)
    assert sum(bus.committed(group, topic).values()) == 5000
    dlq = bus.consumer(group=f"{group}-dlq-reader", topics=[dead_letter_topic(group)])
    letters = drain(dlq, 50)
    dlq.close()
    assert len(letters) == 50
    assert sorted(m.header("dlq.error").decode().split(":")[0] for m in letters) == sorted(bad)
    for letter in letters:
        assert {name for name, _ in letter.headers} == set(DLQ_HEADERS)
        assert letter.header("dlq.topic").decode() == topic
        assert int(letter.header("dlq.offset")) >= 0


def test_a_redelivered_event_is_applied_once(bus, new_topic, group, batch):
    topic = new_topic(PaymentAuthorized.topic)
    event = payment_authorized()
    producer = bus.producer()
    producer.publish([Record(topic, event.encode(), key=event.key())] * 3)
    producer.close()

    stats = ConsumerRunner(ledger_spec(group, (topic,), batch=batch), bus).run(idle_timeout_s=2)

    assert (stats.applied, stats.duplicates) == (1, 2)
    assert LedgerEntry.objects.filter(event_id=event.event_id).count() == 1
    assert ProcessedEvent.objects.filter(consumer=group, event_id=event.event_id).count() == 1


def test_crash_before_commit_redelivers_and_nothing_is_applied_twice(bus, new_topic, group, batch):
    topic = new_topic(PaymentAuthorized.topic)
    events = [payment_authorized() for _ in range(20)]
    producer = bus.producer()
    producer.publish([Record(topic, e.encode(), key=e.key()) for e in events])
    producer.close()

    crashing = ConsumerRunner(ledger_spec(group, (topic,), batch=batch), bus)

    def crash(messages, *, wait=True):
        raise SystemExit("killed before committing offsets")

    crashing.consumer = bus.consumer(group=group, topics=[topic])
    original_commit = crashing.consumer.commit
    crashing.consumer.commit = crash
    batch = drain(crashing.consumer, 20)
    with pytest.raises(SystemExit):
        crashing.process_batch(batch)
    crashing.consumer.commit = original_commit
    crashing.consumer.close()
    assert LedgerEntry.objects.count() == 20
    assert bus.committed(group, topic) in ({}, {0: 0})

    stats = ConsumerRunner(ledger_spec(group, (topic,), batch=batch), bus).run(idle_timeout_s=2)

    assert (stats.applied, stats.duplicates) == (0, 20)
    assert LedgerEntry.objects.count() == 20
    assert bus.committed(group, topic) == {0: 20}


def test_a_refused_commit_is_logged_and_the_batch_redelivered_applies_nothing_twice(
    bus, new_topic, group, caplog, batch
):
    # A broker restarting or a group rebalancing refuses a commit (COORDINATOR_LOAD_IN_PROGRESS,
    # UNKNOWN_MEMBER_ID, found by the chaos soak): the runner goes on rather than exit.
    topic = new_topic(PaymentAuthorized.topic)
    events = [payment_authorized() for _ in range(10)]
    producer = bus.producer()
    producer.publish([Record(topic, e.encode(), key=e.key()) for e in events])
    producer.close()

    refused = ConsumerRunner(ledger_spec(group, (topic,), batch=batch), bus)

    def refuse(messages, *, wait=True):
        raise BusError("Kafka commit failed: Broker: Coordinator load in progress")

    refused.consumer = bus.consumer(group=group, topics=[topic])
    refused.consumer.commit = refuse
    refused.process_batch(drain(refused.consumer, 10))
    refused.consumer.close()
    assert refused.stats.batches == 1
    assert "commit failed" in caplog.text
    assert bus.committed(group, topic) in ({}, {0: 0})

    stats = ConsumerRunner(ledger_spec(group, (topic,), batch=batch), bus).run(idle_timeout_s=2)

    assert (stats.applied, stats.duplicates) == (0, 10)
    assert LedgerEntry.objects.count() == 10
    assert bus.committed(group, topic) == {0: 10}


def test_a_handler_that_keeps_failing_dead_letters_the_event_and_moves_on(
    bus, new_topic, group, monkeypatch
):
    topic = new_topic(PaymentAuthorized.topic)
    bad, good = payment_authorized(amount_cents=666), payment_authorized()
    producer = bus.producer()
    producer.publish([Record(topic, e.encode(), key=e.key()) for e in (bad, good)])
    producer.close()

    monkeypatch.setattr("events.ledger.handle_event", ledger_handler_failing_on(666, topic))
    runner = ConsumerRunner(ledger_spec(group, (topic,)), bus, retry_delay_s=0)
    stats = runner.run(idle_timeout_s=2)

    assert (stats.applied, stats.dead_lettered) == (1, 1)
    assert list(LedgerEntry.objects.values_list("event_id", flat=True)) == [good.event_id]
    assert not ProcessedEvent.objects.filter(event_id=bad.event_id).exists()
    dlq = bus.consumer(group=f"{group}-reader", topics=[dead_letter_topic(group)])
    (letter,) = drain(dlq, 1)
    dlq.close()
    assert letter.header("dlq.error").decode() == "handler_error: ValueError: cannot handle 666"
    assert letter.value == bad.encode()


def test_a_database_outage_stops_the_consumer_instead_of_dead_lettering(
    bus, new_topic, group, monkeypatch, batch
):
    topic = new_topic(PaymentAuthorized.topic)
    event = payment_authorized()
    producer = bus.producer()
    producer.publish([Record(topic, event.encode(), key=event.key())])
    producer.close()

    def handler(event):
        raise OperationalError("connection refused")

    monkeypatch.setattr("events.ledger.handle_event", handler)
    monkeypatch.setattr("events.ledger.handle_events", handler)
    runner = ConsumerRunner(ledger_spec(group, (topic,), batch=batch), bus)

    with pytest.raises(OperationalError):
        runner.run(idle_timeout_s=2)
    assert runner.stats.dead_lettered == 0
    assert bus.committed(group, topic) in ({}, {0: 0})


def test_a_batch_is_claimed_and_applied_in_a_few_statements_whatever_its_size(
    bus, new_topic, group
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    topic = new_topic(PaymentAuthorized.topic)
    events = [payment_authorized() for _ in range(300)]
    producer = bus.producer()
    producer.publish([Record(topic, e.encode(), key=e.key()) for e in events])
    producer.close()
    runner = ConsumerRunner(ledger_spec(group, (topic,), batch=True), bus)
    runner.consumer = bus.consumer(group=group, topics=[topic])
    batch = drain(runner.consumer, 300)

    with CaptureQueriesContext(connection) as queries:
        runner.process_batch(batch + batch[:50])  # 50 of them delivered twice in the batch
    runner.consumer.close()

    # The claims read, the claims and the entries inserted, the savepoint: not 300 transactions.
    assert len(queries) <= 6
    assert (runner.stats.applied, runner.stats.duplicates) == (300, 50)
    assert LedgerEntry.objects.count() == 300
    assert ProcessedEvent.objects.filter(consumer=group).count() == 300


def test_a_batch_that_fails_as_one_goes_event_by_event_and_only_the_bad_one_is_dead_lettered(
    bus, new_topic, group, monkeypatch
):
    topic = new_topic(PaymentAuthorized.topic)
    bad, good = payment_authorized(amount_cents=666), payment_authorized()
    producer = bus.producer()
    producer.publish([Record(topic, e.encode(), key=e.key()) for e in (good, bad)])
    producer.close()
    one = ledger_handler_failing_on(666, topic)

    def batch_handler(events):
        for event in events:
            one(event)

    monkeypatch.setattr("events.ledger.handle_event", one)
    monkeypatch.setattr("events.ledger.handle_events", batch_handler)
    runner = ConsumerRunner(ledger_spec(group, (topic,), batch=True), bus, retry_delay_s=0)
    stats = runner.run(idle_timeout_s=2)

    assert (stats.applied, stats.dead_lettered) == (1, 1)
    # The good one applied once: the failed batch left nothing behind.
    assert list(LedgerEntry.objects.values_list("event_id", flat=True)) == [good.event_id]
    assert list(
        ProcessedEvent.objects.filter(consumer=group).values_list("event_id", flat=True)
    ) == [good.event_id]
