"""Dead letters read back and redriven (``events.deadletters``, ``manage.py deadletters``): on
both buses, the records a consumer rejected are listed with their origin and error, and once the
cause is fixed a redrive puts the chosen ones back on their origin topic, where the idempotent
consumer applies each once however often it is redriven."""

import io
import signal

import pytest
from django.core.management import CommandError, call_command

from events.bus import Message, Record
from events.contracts import PaymentAuthorized, dead_letter_topic
from events.deadletters import (
    REDRIVEN_HEADER,
    NotADeadLetter,
    dead_letter_read,
    dead_letters_read,
    dead_letters_redrive,
)
from events.models import LedgerEntry
from events.registry import CONSUMERS, ConsumerSpec
from events.runner import ConsumerRunner
from events.stopping import stop_on_signals
from tests.events.bus_helpers import drain
from tests.events.factories import (
    ledger_handler_failing_on,
    ledger_spec,
    payment_authorized,
    poison_values,
)

pytestmark = pytest.mark.django_db


def _failing_on_666(monkeypatch, topic: str) -> None:
    monkeypatch.setattr("events.ledger.handle_event", ledger_handler_failing_on(666, topic))


def _publish(bus, records: list[Record]) -> None:
    producer = bus.producer()
    assert all(e is None for e in producer.publish(records))
    producer.close()


def test_dead_letters_are_read_with_their_origin_and_a_redrive_after_the_fix_applies_once(
    bus, new_topic, group, monkeypatch
):
    topic = new_topic(PaymentAuthorized.topic)
    bad, good = payment_authorized(amount_cents=666), payment_authorized()
    poison = poison_values()["schema"]
    _publish(
        bus,
        [
            Record(topic, bad.encode(), key=bad.key()),
            Record(topic, good.encode(), key=good.key()),
            Record(topic, poison, key="card-9"),
        ],
    )
    _failing_on_666(monkeypatch, topic)
    stats = ConsumerRunner(ledger_spec(group, (topic,)), bus, retry_delay_s=0).run(idle_timeout_s=2)
    assert (stats.applied, stats.dead_lettered) == (1, 2)
    dead = dead_letter_topic(group)

    letters = dead_letters_read(bus, dead)

    assert [(x.origin_topic, x.origin_offset, x.kind) for x in letters] == [
        (topic, 0, "handler_error"),
        (topic, 2, "schema"),
    ]
    assert letters[0].detail == "ValueError: cannot handle 666"
    assert letters[0].consumer == group
    assert letters[0].key == bad.key()
    assert letters[0].value == bad.encode()
    assert letters[1].value == poison
    assert letters[0].at is not None
    assert dead_letters_read(bus, dead) == letters  # reading moved nothing

    monkeypatch.undo()  # the fix: the real ledger handler again
    assert dead_letters_redrive(bus, dead, [letters[0]]) == 1
    assert bus.end_offsets(topic) == {0: 4}
    again = ConsumerRunner(ledger_spec(group, (topic,)), bus).run(idle_timeout_s=2)
    assert (again.applied, again.duplicates, again.dead_lettered) == (1, 0, 0)
    assert LedgerEntry.objects.filter(event_id=bad.event_id).count() == 1

    assert dead_letters_redrive(bus, dead, [letters[0]]) == 1  # a repeat is harmless
    third = ConsumerRunner(ledger_spec(group, (topic,)), bus).run(idle_timeout_s=2)
    assert (third.applied, third.duplicates) == (0, 1)
    assert LedgerEntry.objects.filter(event_id=bad.event_id).count() == 1
    reader = bus.consumer(group=f"{group}-check", topics=[topic])
    redriven = drain(reader, 5)[3:]
    reader.close()
    source = f"{dead}[{letters[0].partition}]@{letters[0].offset}"
    assert [m.header(REDRIVEN_HEADER).decode() for m in redriven] == [source] * 2


def test_a_topic_never_written_has_no_dead_letters(bus, new_topic):
    assert dead_letters_read(bus, new_topic("deadletter")) == []


def test_a_record_without_the_dead_letter_headers_is_refused():
    message = Message(topic="deadletter.x", partition=0, offset=3, key=None, value=b"{}")
    with pytest.raises(NotADeadLetter, match=r"deadletter\.x\[0\]@3 lacks dlq\.topic"):
        dead_letter_read(message)


@pytest.fixture
def embedded_settings(settings, tmp_path, embedded_bus):
    settings.EVENT_BUS = "embedded"
    settings.EVENT_LOG_PATH = embedded_bus.path
    return embedded_bus


def _ledger_dead_letters(bus, monkeypatch) -> str:
    """Run the registered event-ledger consumer over a bad and a poison payment; return the
    topic they came from."""
    topic = PaymentAuthorized.topic
    bus.ensure_topics([topic], partitions=1)
    bad = payment_authorized(amount_cents=666)
    _publish(
        bus,
        [
            Record(topic, bad.encode(), key=bad.key()),
            Record(topic, poison_values()["invalid_json"], key="card-9"),
        ],
    )
    _failing_on_666(monkeypatch, topic)
    spec = ConsumerSpec(name="event-ledger", handler="events.ledger.handle_event", topics=(topic,))
    stats = ConsumerRunner(spec, bus, retry_delay_s=0).run(idle_timeout_s=2)
    assert stats.dead_lettered == 2
    monkeypatch.undo()
    return topic


def test_the_command_lists_each_dead_letter_with_its_origin_kind_and_age(
    embedded_settings, monkeypatch
):
    topic = _ledger_dead_letters(embedded_settings, monkeypatch)
    out = io.StringIO()

    call_command("deadletters", "event-ledger", "--list", stdout=out)

    bad, poison = dead_letters_read(embedded_settings, "deadletter.event-ledger")
    lines = out.getvalue().splitlines()
    assert lines[0] == "deadletter.event-ledger: 2 dead letters (1 handler_error, 1 invalid_json)"
    assert lines[1].startswith(
        f"{bad.partition}:{bad.offset}  from {topic}[0]@0  handler_error: ValueError: cannot "
        "handle 666  (just now, 20"
    )
    assert lines[2].startswith(
        f"{poison.partition}:{poison.offset}  from {topic}[0]@1  invalid_json: "
    )
    assert lines[2].endswith(" UTC)")


def test_the_command_redrives_only_what_is_chosen_and_refuses_what_is_not_there(
    embedded_settings, monkeypatch
):
    bus = embedded_settings
    topic = _ledger_dead_letters(bus, monkeypatch)
    with pytest.raises(CommandError, match="--redrive needs a choice"):
        call_command("deadletters", "event-ledger", "--redrive", stdout=io.StringIO())
    with pytest.raises(CommandError, match=r"has no record at 0:9; nothing redriven"):
        call_command("deadletters", "event-ledger", "--redrive", "--at", "0:9")
    with pytest.raises(CommandError, match="no consumer named 'ledger'"):
        call_command("deadletters", "ledger")
    assert bus.end_offsets(topic) == {0: 2}

    bad, _ = dead_letters_read(bus, "deadletter.event-ledger")
    out = io.StringIO()
    call_command("deadletters", "event-ledger", "--redrive", "--kind", "handler_error", stdout=out)

    assert out.getvalue().splitlines() == [
        f"redriven {bad.partition}:{bad.offset} -> {topic}[0]@0",
        "event-ledger: 1 dead letters redriven from deadletter.event-ledger",
    ]
    assert bus.end_offsets(topic) == {0: 3}


def test_topics_creates_the_dead_letter_topic_of_every_registered_consumer(embedded_settings):
    call_command("topics", stdout=io.StringIO())

    for name in ("event-ledger", "stream-features", "fraud-scorer"):
        assert name in CONSUMERS
        assert embedded_settings.end_offsets(f"deadletter.{name}") != {}


def test_stop_on_signals_sets_the_flag_and_puts_the_old_handlers_back():
    def previous(signum, frame):
        raise AssertionError("the old handler ran inside the block")

    old = signal.signal(signal.SIGTERM, previous)
    try:
        with stop_on_signals() as stop:
            signal.raise_signal(signal.SIGTERM)
            assert stop.is_set()
        assert signal.getsignal(signal.SIGTERM) is previous
    finally:
        signal.signal(signal.SIGTERM, old)
