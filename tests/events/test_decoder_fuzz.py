"""Every topic's decoder against what a broken or hostile producer could send: random bytes,
random JSON, and valid events with a field removed, retyped or replaced. Each either decodes
into its topic's event (which then encodes and decodes to itself) or is refused as a
``PoisonMessage`` of a known kind, which a consumer step turns into a dead letter carrying the
record's bytes; nothing else is raised."""

from __future__ import annotations

import itertools
import json
import uuid
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.bus import Message
from events.contracts import (
    TOPICS,
    Event,
    FraudScored,
    PaymentCaptureRequested,
    PaymentRefunded,
    PoisonMessage,
    decode,
)
from events.deadletters import DeadLetterer
from events.streaming import BatchStep
from tests.events.factories import chargeback_filed, review_decided

KINDS = {"unknown_topic", "oversized", "invalid_json", "unknown_version", "schema"}
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


@cache
def samples() -> dict[str, Event]:
    """One valid event of every declared topic: the simulator's, and the few it never emits."""
    from simulator.city import city_from_file
    from simulator.config import SCENARIOS, SimConfig
    from simulator.engine import Simulation

    config = SimConfig(seed=3, riders=200, drivers=30, scenarios=dict.fromkeys(SCENARIOS, 50.0))
    found: dict[str, Event] = {}
    for emitted in itertools.islice(Simulation(config, city_from_file()).events(), 30_000):
        found.setdefault(emitted.event.topic, emitted.event)
    found["labels.chargeback_filed.v1"] = chargeback_filed()
    found["reviews.decided.v1"] = review_decided()
    captured = found["payments.captured.v1"]
    found["payments.refunded.v1"] = PaymentRefunded(
        **captured.model_dump(exclude={"event_id"}), event_id=uuid.uuid4(), reason="fraud"
    )
    authorized = found["payments.authorized.v1"]
    # The booking's, at a trip's end with the capture checkpoint on.
    found["payments.capture_requested.v1"] = PaymentCaptureRequested(
        **authorized.model_dump(exclude={"event_id"}), event_id=uuid.uuid4(), driver_id="d-1"
    )
    found["fraud.scored.v1"] = FraudScored(
        payment_id=authorized.payment_id, payment_event_id=authorized.event_id,
        card_id=authorized.card_id, rider_id=authorized.rider_id, score=0.42,
        decision="review", model_version="fuzz-1", occurred_at=authorized.occurred_at,
    )  # fmt: skip
    return found


def test_every_declared_topic_has_a_valid_sample():
    assert set(samples()) == set(TOPICS)
    for topic, event in samples().items():
        assert decode(topic, event.encode()) == event


def _decodes_or_is_poison(topic: str, value: bytes) -> None:
    refused = None
    try:
        event = decode(topic, value)
    except PoisonMessage as poison:
        refused = poison.kind
    if refused is not None:
        assert refused in KINDS
    else:
        assert event.topic == topic
        assert decode(topic, event.encode()) == event


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(topic=st.sampled_from(sorted(TOPICS)), value=st.binary(max_size=300))
def test_random_bytes_are_an_event_or_poison(topic, value):
    _decodes_or_is_poison(topic, value)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(topic=st.sampled_from(sorted(TOPICS)), value=JSON)
def test_random_json_is_an_event_or_poison(topic, value):
    _decodes_or_is_poison(topic, json.dumps(value).encode())


@st.composite
def mutated(draw) -> tuple[str, bytes]:
    """A valid event of a random topic with one field dropped, retyped or replaced by junk, or
    with a field added, or its bytes cut short."""
    topic = draw(st.sampled_from(sorted(TOPICS)))
    payload = json.loads(samples()[topic].encode())
    how = draw(st.sampled_from(["drop", "replace", "add", "truncate"]))
    field = draw(st.sampled_from(sorted(payload)))
    if how == "drop":
        del payload[field]
    elif how == "replace":
        payload[field] = draw(JSON)
    elif how == "add":
        payload[draw(st.text(min_size=1, max_size=12))] = draw(JSON)
    else:
        text = json.dumps(payload).encode()
        return topic, text[: draw(st.integers(0, len(text) - 1))]
    return topic, json.dumps(payload).encode()


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(case=mutated())
def test_mutated_events_are_an_event_or_poison(case):
    _decodes_or_is_poison(*case)


@pytest.mark.parametrize("topic", sorted(TOPICS))
@pytest.mark.parametrize("field", ["event_id", "occurred_at"])
def test_a_record_without_its_identity_is_refused(topic, field):
    # The event's defaults (a fresh id, the time now) would make each decode of it another
    # event: applied twice by a consumer that reads it twice.
    payload = json.loads(samples()[topic].encode())
    del payload[field]
    with pytest.raises(PoisonMessage, match=f"{field}: Field required"):
        decode(topic, json.dumps(payload).encode())


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(case=mutated())
def test_a_step_dead_letters_what_it_cannot_decode_with_its_bytes(case):
    topic, value = case
    step = BatchStep()
    step.dead_letters = DeadLetterer("fuzz", topic="deadletter.fuzz")
    message = Message(topic=topic, partition=0, offset=7, key=None, value=value, timestamp_ms=0)
    rejected: list = []

    decoded = step.decode_or_dead_letter(message, rejected)

    if decoded is None:
        [letter] = rejected
        assert letter.topic == "deadletter.fuzz"
        assert letter.value == value
    else:
        assert rejected == []
        assert decoded[0].topic == topic
