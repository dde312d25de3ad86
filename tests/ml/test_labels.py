"""Label intake: the rule for late and contradicting labels (``ml.labels``), its tables
(``ml.services.label_record``, ``ml.selectors.labels_as_of``) and the registered
``label-intake`` consumer on each bus (the embedded log and a real Kafka broker)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from events.backends.embedded import EmbeddedBus
from events.backends.kafka import KafkaBus
from events.bus import Record
from events.contracts import ChargebackFiled, Event, ReviewDecided
from events.deadletters import dead_letters_read
from events.registry import CONSUMERS, ConsumerSpec
from events.runner import ConsumerRunner
from ml.labels import CHARGEBACK, REVIEW, Evidence, resolve, resolved_frame
from ml.models import Label, LabelEvidence
from ml.selectors import labels_as_of
from ml.services import label_record

T = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _evidence(source: str, fraud: bool, hours: float, detail: str = "") -> Evidence:
    return Evidence(
        source=source,
        fraud=fraud,
        detail=detail or source,
        known_at=T + timedelta(hours=hours),
        event_id=str(uuid.uuid4()),
    )


# The rule, pure.


def test_no_evidence_is_no_label():
    assert resolve([]) is None


def test_a_fraud_chargeback_overrides_an_analysts_legitimate():
    cleared = _evidence(REVIEW, False, 1)
    charged_back = _evidence(CHARGEBACK, True, 72, "10.4")
    resolved = resolve([charged_back, cleared])
    assert (resolved.fraud, resolved.source, resolved.known_at) == (
        True,
        CHARGEBACK,
        T + timedelta(hours=72),
    )
    assert resolved.contradicted


def test_the_earliest_fraud_chargeback_says_when_fraud_became_known():
    later, earlier = (
        _evidence(CHARGEBACK, True, 90, "10.4"),
        _evidence(CHARGEBACK, True, 30, "10.4"),
    )
    resolved = resolve([later, earlier])
    assert (resolved.known_at, resolved.contradicted) == (T + timedelta(hours=30), False)


def test_the_latest_analyst_decision_stands_over_an_earlier_one():
    resolved = resolve([_evidence(REVIEW, True, 1), _evidence(REVIEW, False, 5)])
    assert (resolved.fraud, resolved.known_at, resolved.contradicted) == (
        False, T + timedelta(hours=5), True,
    )  # fmt: skip
    resolved = resolve([_evidence(REVIEW, False, 1), _evidence(REVIEW, True, 5)])
    assert (resolved.fraud, resolved.known_at) == (True, T + timedelta(hours=5))


def test_an_analysts_fraud_stands_over_a_chargeback_for_another_reason():
    resolved = resolve([_evidence(REVIEW, True, 2), _evidence(CHARGEBACK, False, 80, "13.1")])
    assert (resolved.fraud, resolved.source, resolved.contradicted) == (True, REVIEW, True)


def test_a_chargeback_for_another_reason_alone_is_legitimate():
    resolved = resolve([_evidence(CHARGEBACK, False, 80, "13.1")])
    assert (resolved.fraud, resolved.source, resolved.contradicted) == (False, CHARGEBACK, False)


def test_the_frame_has_one_typed_row_per_payment_even_empty():
    frame = resolved_frame(
        [("p1", _evidence(REVIEW, False, 1)), ("p1", _evidence(CHARGEBACK, True, 9, "10.4")),
         ("p2", _evidence(REVIEW, False, 2))]
    )  # fmt: skip
    assert frame.values.tolist() == [
        ["p1", 1, CHARGEBACK, T + timedelta(hours=9), True],
        ["p2", 0, REVIEW, T + timedelta(hours=2), False],
    ]
    empty = resolved_frame([])
    assert list(empty.columns) == list(frame.columns)
    assert dict(empty.dtypes) == dict(frame.dtypes)


# The tables.


@pytest.mark.django_db
def test_recording_evidence_resolves_the_payments_label_again_once_per_event():
    cleared = _evidence(REVIEW, False, 1)
    label = label_record(payment_id="p1", evidence=cleared)
    assert (label.fraud, label.source, label.evidence) == (False, REVIEW, 1)

    fraud = _evidence(CHARGEBACK, True, 72, "10.4")
    label = label_record(payment_id="p1", evidence=fraud)
    assert (label.fraud, label.source, label.known_at, label.contradicted, label.evidence) == (
        True, CHARGEBACK, T + timedelta(hours=72), True, 2,
    )  # fmt: skip
    # The same event again changes nothing.
    again = label_record(payment_id="p1", evidence=fraud)
    assert (again.fraud, again.evidence) == (True, 2)
    assert LabelEvidence.objects.filter(payment_id="p1").count() == 2
    assert Label.objects.count() == 1


@pytest.mark.django_db
def test_labels_as_of_a_moment_are_what_was_known_then():
    label_record(payment_id="p1", evidence=_evidence(REVIEW, False, 1))
    label_record(payment_id="p1", evidence=_evidence(CHARGEBACK, True, 72, "10.4"))
    label_record(payment_id="p2", evidence=_evidence(CHARGEBACK, True, 48, "10.4"))
    label_record(payment_id="p3", evidence=_evidence(REVIEW, True, 3))

    now = labels_as_of()
    # Resolved from the evidence by the same rule, the table reads the same.
    assert now.values.tolist() == labels_as_of(as_of=T + timedelta(days=30)).values.tolist()
    assert now[["payment_id", "label", "label_source"]].values.tolist() == [
        ["p1", 1, CHARGEBACK], ["p2", 1, CHARGEBACK], ["p3", 1, REVIEW],
    ]  # fmt: skip
    day_one = labels_as_of(as_of=T + timedelta(hours=24))
    assert day_one[["payment_id", "label", "label_source"]].values.tolist() == [
        ["p1", 0, REVIEW], ["p3", 1, REVIEW],
    ]  # fmt: skip
    assert labels_as_of(as_of=T).empty


# The consumer.


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def bus(request, tmp_path):
    if request.param == "kafka":
        return KafkaBus(bootstrap_servers=request.getfixturevalue("kafka_bootstrap"), timeout_s=10)
    return EmbeddedBus(tmp_path / "event-log.sqlite3")


def _chargeback(payment_id: str, reason: str, hours: float) -> ChargebackFiled:
    return ChargebackFiled(
        chargeback_id=f"cb-{uuid.uuid4().hex[:8]}",
        payment_id=payment_id,
        card_id="card-1",
        rider_id="rider-1",
        amount_cents=2400,
        reason_code=reason,
        occurred_at=T + timedelta(hours=hours),
    )


def _decided(payment_id: str, decision: str, hours: float, *, expired: bool = False):
    return ReviewDecided(
        review_id=f"rv-{uuid.uuid4().hex[:8]}",
        payment_id=payment_id,
        card_id="card-1",
        rider_id="rider-1",
        decision=decision,
        analyst="ana",
        expired=expired,
        occurred_at=T + timedelta(hours=hours),
    )


@pytest.mark.django_db(transaction=True)
def test_the_label_intake_consumer_keeps_one_label_per_payment(bus):
    registered = CONSUMERS["label-intake"]
    namespace = f"test-{uuid.uuid4().hex[:8]}"
    topics = tuple(f"{namespace}.{t}" for t in registered.topics)
    chargebacks, reviews = topics
    bus.ensure_topics(list(topics), partitions=1)
    cleared = _decided("p-contradicted", "legitimate", 1)
    events: list[Event] = [
        cleared,
        cleared,  # redelivered
        _decided("p-reviewed", "confirmed_fraud", 2),
        _decided("p-expired", "legitimate", 3, expired=True),
        _chargeback("p-contradicted", "10.4", 70),
        _chargeback("p-not-received", "13.1", 80),
    ]
    producer = bus.producer()
    records = [
        Record(chargebacks if isinstance(e, ChargebackFiled) else reviews, e.encode(), key=e.key())
        for e in events
    ]
    records.append(Record(chargebacks, b"{not json", key="card-1"))
    assert all(error is None for error in producer.publish(records))
    producer.close()

    spec = ConsumerSpec(name=registered.name, handler=registered.handler, topics=topics)
    runner = ConsumerRunner(spec, bus, retry_delay_s=0)
    runner.group = f"{namespace}-labels"
    stats = runner.run(idle_timeout_s=3)

    assert (stats.applied, stats.duplicates, stats.dead_lettered) == (5, 1, 1)
    found = {
        label.payment_id: (label.fraud, label.source, label.contradicted, label.evidence)
        for label in Label.objects.all()
    }
    assert found == {
        "p-contradicted": (True, CHARGEBACK, True, 2),
        "p-reviewed": (True, REVIEW, False, 1),
        "p-not-received": (False, CHARGEBACK, False, 1),
    }
    assert not LabelEvidence.objects.filter(payment_id="p-expired").exists()
    letters = [
        letter
        for letter in dead_letters_read(bus, "deadletter.label-intake")
        if letter.origin_topic == chargebacks
    ]
    assert [letter.origin_offset for letter in letters] == [2]
