import time

import pytest
from django.db import transaction

from events.contracts import PaymentAuthorized, TripRequested
from events.models import LedgerEntry, OutboxEvent
from events.outbox import OutsideTransaction, outbox_backlog, outbox_publish
from events.relay import Backoff, relay_once
from events.runner import ConsumerRunner
from tests.events.factories import ledger_spec, payment_authorized, trip_requested

pytestmark = pytest.mark.django_db


def book(n: int, *, rider_id: str = "rider-1") -> list:
    """Commit ``n`` bookings' worth of events, each in its own transaction."""
    events = []
    for _ in range(n):
        with transaction.atomic():
            event = trip_requested(rider_id=rider_id)
            outbox_publish(event)
            events.append(event)
    return events


def ledger(bus, group: str):
    spec = ledger_spec(group, tuple(_topics()))
    return ConsumerRunner(spec, bus)


def _topics():
    return [TripRequested.topic, PaymentAuthorized.topic]


@pytest.mark.django_db(transaction=True)
def test_outbox_publish_refuses_to_run_outside_a_transaction():
    with pytest.raises(OutsideTransaction, match=r"must run inside transaction\.atomic"):
        outbox_publish(payment_authorized())
    assert OutboxEvent.objects.count() == 0


def test_an_exception_before_commit_publishes_nothing(embedded_bus):
    def booking_that_fails() -> None:
        with transaction.atomic():
            outbox_publish(trip_requested())
            raise RuntimeError("card declined later in the same booking")

    with pytest.raises(RuntimeError, match="card declined later"):
        booking_that_fails()

    producer = embedded_bus.producer()
    assert relay_once(producer).published == 0
    producer.close()
    assert OutboxEvent.objects.count() == 0
    assert embedded_bus.end_offsets(TripRequested.topic) == {}


def test_relay_publishes_in_order_and_marks_only_acknowledged_rows(bus, group):
    events = book(5, rider_id="rider-a") + book(5, rider_id="rider-b")
    bus.ensure_topics(_topics(), partitions=3)
    producer = bus.producer()

    result = relay_once(producer)
    producer.close()

    assert (result.published, result.failed) == (10, 0)
    assert not OutboxEvent.objects.filter(published_at__isnull=True).exists()
    consumer = bus.consumer(group=group, topics=[TripRequested.topic])
    # The topic is shared by the session's tests: read until these ten have all come.
    ids = {str(e.event_id) for e in events}
    received = []
    deadline = time.monotonic() + 30
    while ids - {m.header("event_id").decode() for m in received} and time.monotonic() < deadline:
        polled = consumer.poll(timeout=0.5, max_records=500)
        received += [m for m in polled if m.header("event_id").decode() in ids]
    consumer.close()
    for rider in ("rider-a", "rider-b"):
        sent = [str(e.event_id) for e in events if e.rider_id == rider]
        got = [m.header("event_id").decode() for m in received if m.key == rider]
        assert got == sent


def test_relay_killed_after_ack_before_marking_duplicates_but_consumer_applies_once(
    embedded_bus, group
):
    events = book(30)

    def killed(rows):
        raise SystemExit("relay killed after the broker acknowledged")

    producer = embedded_bus.producer()
    with pytest.raises(SystemExit):
        relay_once(producer, after_publish=killed)
    assert OutboxEvent.objects.filter(published_at__isnull=True).count() == 30
    assert relay_once(producer).published == 30  # the restarted relay sends them again
    producer.close()
    assert sum(embedded_bus.end_offsets(TripRequested.topic).values()) == 60

    stats = ledger(embedded_bus, group).run(idle_timeout_s=2)

    assert (stats.applied, stats.duplicates) == (30, 30)
    assert set(LedgerEntry.objects.values_list("event_id", flat=True)) == {
        e.event_id for e in events
    }


def test_failed_publish_marks_nothing_after_the_first_failure(embedded_bus):
    book(4)

    class HalfDown:
        def publish(self, records, *, timeout):
            return [None, None, ConnectionError("broker went away"), None]

    result = relay_once(HalfDown())

    assert (result.published, result.failed) == (2, 2)
    assert "broker went away" in result.error
    pending = OutboxEvent.objects.filter(published_at__isnull=True).order_by("id")
    assert [row.attempts for row in pending] == [1, 1]
    assert outbox_backlog().events == 2


def test_backoff_grows_to_its_cap_with_full_jitter():
    backoff = Backoff(base_s=0.1, cap_s=2.0)
    delays = [backoff.next_delay() for _ in range(12)]
    ceilings = [min(2.0, 0.1 * 2**n) for n in range(12)]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    backoff.reset()
    assert backoff.next_delay() <= 0.1


def test_backlog_reports_count_and_age():
    assert outbox_backlog().events == 0
    book(3)
    backlog = outbox_backlog()
    assert backlog.events == 3
    assert backlog.oldest_age_seconds >= 0


@pytest.mark.django_db(transaction=True)
def test_the_idle_relay_is_woken_by_a_commit_not_by_the_rollback_before_it():
    from threading import Event as StopFlag

    from django.db import connection

    from events.relay import OutboxWakeup

    assert connection.vendor == "postgresql", "the wake-up is PostgreSQL's LISTEN/NOTIFY"
    wakeup = OutboxWakeup()
    listener = wakeup._listen()
    try:

        def booking_that_fails() -> None:
            with transaction.atomic():
                outbox_publish(trip_requested())
                raise RuntimeError("rolled back")

        with pytest.raises(RuntimeError):
            booking_that_fails()
        assert list(listener.notifies(timeout=0.5)) == []

        book(1)
        # A bound, not a speed: the notification is there, whatever the wait.
        notified = list(listener.notifies(timeout=30, stop_after=1))
        assert [n.channel for n in notified] == [OutboxWakeup.CHANNEL]

        book(3)  # three commits
        wakeup.wait(30, StopFlag())
        # The wake-up took the burst's first notification and drained what had arrived with
        # it. The others may still be on their way (the server sends each commit's on its own:
        # CI once saw one arrive after the drain); the relay reads the whole outbox at each
        # wake-up, so a late one costs one empty read, never an event.
        late = list(listener.notifies(timeout=1))
        assert len(late) < 3
    finally:
        wakeup.close()
