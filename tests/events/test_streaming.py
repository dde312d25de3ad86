"""The one consumer loop (``events.streaming``) on the embedded bus: which hooks run when, what
it commits, how each way of stopping ends it, and what a failing step leaves behind."""

import io
import logging
import threading
from collections.abc import Sequence

import pytest
from django.core.management import CommandError, call_command

from events.bus import BusError, Message, Producer, Record, Sent
from events.streaming import BatchStep, Publisher, consume, offsets_commit


class Recorder(BatchStep):
    """A step that commits every batch and writes down every hook the loop calls."""

    name = "test-step"
    log_every_s = 3600.0
    poll_timeout_s = 0.05

    def __init__(self, bus, topic: str, *, fail_on: int | None = None, ready: bool = True):
        self.bus = bus
        self.group = f"{topic}-group"
        self.topics = (topic,)
        self.stats = type("Stats", (), {"events": 0})()
        self.calls: list[str] = []
        self.batches: list[list[int]] = []
        self.fail_on = fail_on
        self.is_ready = ready
        self.stop_after: threading.Event | None = None
        self.consumer_seen = None

    def open(self):
        self.calls.append("open")

    def ready(self):
        self.calls.append("ready")
        return self.is_ready

    def submit(self, messages: Sequence[Message]):
        self.calls.append("submit")
        self.consumer_seen = self.consumer
        offsets = [m.offset for m in messages]
        if self.fail_on in offsets:
            raise RuntimeError("step failed")
        self.stats.events += len(messages)
        self.batches.append(offsets)
        offsets_commit(self, messages)
        if self.stop_after is not None:
            self.stop_after.set()

    def idle(self):
        self.calls.append("idle")

    def tick(self):
        self.calls.append("tick")

    def drain(self):
        self.calls.append("drain")

    def close(self):
        self.calls.append("close")


@pytest.fixture
def topic(embedded_bus) -> str:
    embedded_bus.ensure_topics(["t.stream"], partitions=1)
    producer = embedded_bus.producer()
    producer.publish([Record("t.stream", f"v{i}".encode(), key="k") for i in range(5)])
    producer.close()
    return "t.stream"


def test_a_step_gets_every_record_then_drains_and_closes_once_with_its_offsets_committed(
    embedded_bus, topic, caplog
):
    step = Recorder(embedded_bus, topic)
    caplog.set_level(logging.INFO, logger="events.streaming")

    consume(step, embedded_bus, until_idle_s=0.5)

    assert [offset for batch in step.batches for offset in batch] == [0, 1, 2, 3, 4]
    assert step.calls[0] == "open"
    # The idle turn that found the consumer idle long enough ends the loop, without a tick.
    assert step.calls[-3:] == ["idle", "drain", "close"]
    assert step.calls.count("drain") == step.calls.count("close") == 1
    # Every other turn of the loop (a batch or an empty poll) ends with a tick.
    turns = step.calls.count("submit") + step.calls.count("idle")
    assert step.calls.count("tick") == turns - 1
    assert all(step.calls[i + 1] == "tick" for i, c in enumerate(step.calls) if c == "submit")
    assert step.consumer_seen is not None
    assert step.consumer is None
    assert embedded_bus.committed(step.group, topic) == {0: 5}
    assert any(r.getMessage().startswith("test-step: ") for r in caplog.records)
    assert "5 events" in caplog.records[-1].getMessage()


def test_a_stop_flag_ends_the_loop_after_the_batch_in_progress(embedded_bus, topic):
    step = Recorder(embedded_bus, topic)
    step.max_records = 2
    step.stop_after = stop = threading.Event()

    consume(step, embedded_bus, stop=stop)

    assert step.batches == [[0, 1]]
    assert step.calls[-2:] == ["drain", "close"]
    assert embedded_bus.committed(step.group, topic) == {0: 2}


def test_max_batches_ends_the_loop(embedded_bus, topic):
    step = Recorder(embedded_bus, topic)
    step.max_records = 2

    consume(step, embedded_bus, max_batches=2)

    assert step.batches == [[0, 1], [2, 3]]
    assert embedded_bus.committed(step.group, topic) == {0: 4}


def test_a_failing_step_is_closed_not_drained_and_its_batch_is_not_committed(embedded_bus, topic):
    step = Recorder(embedded_bus, topic, fail_on=3)
    step.max_records = 2

    with pytest.raises(RuntimeError, match="step failed"):
        consume(step, embedded_bus, until_idle_s=5)

    assert step.batches == [[0, 1]]
    assert "drain" not in step.calls
    assert step.calls[-1] == "close"
    assert step.consumer is None
    assert embedded_bus.committed(step.group, topic) == {0: 2}


def test_a_step_that_is_not_ready_reads_nothing_until_max_seconds(embedded_bus, topic):
    step = Recorder(embedded_bus, topic, ready=False)
    step.not_ready_wait_s = 0.05

    consume(step, embedded_bus, max_seconds=0.3)

    assert "submit" not in step.calls
    assert "tick" not in step.calls
    assert step.calls.count("ready") >= 2
    assert step.calls[-2:] == ["drain", "close"]
    assert embedded_bus.committed(step.group, topic) in ({}, {0: 0})


class RefusingCommits:
    def commit(self, messages, *, wait=True):
        raise BusError("the group rebalanced")


def test_a_refused_commit_is_logged_and_reported_not_raised(caplog):
    step = Recorder(None, "t")
    step.consumer = RefusingCommits()

    assert offsets_commit(step, []) is False
    assert "test-step: commit failed, the batches will be replayed" in caplog.text
    step.consumer = None
    assert offsets_commit(step, []) is True  # no consumer: nothing to commit


class Refusing(Producer):
    def send(self, records):
        return Sent(records, [BusError("broker went away")] * len(records))


def test_publish_acked_raises_when_a_record_is_refused(embedded_bus):
    publisher = Publisher(embedded_bus)
    publisher._producer = Refusing()

    with pytest.raises(BusError, match="dead-letter publish failed: broker went away"):
        publisher.publish_acked([Record("t.x", b"v")])


def test_consume_refuses_an_unknown_consumer_naming_the_registered_ones():
    with pytest.raises(CommandError) as refused:
        call_command("consume", "nope", stdout=io.StringIO())

    assert str(refused.value) == (
        "no consumer named 'nope'; registered: booking-verdicts, event-ledger, "
        "fraud-capture-scorer, fraud-scorer, label-intake, stream-features"
    )
