import json

import pytest

from events.contracts import TOPICS, PaymentAuthorized, PoisonMessage, decode
from tests.events.factories import payment_authorized, poison_values


def test_every_topic_is_versioned_and_declares_an_existing_key_field():
    for topic, schema in TOPICS.items():
        assert topic.endswith(".v1")
        assert schema.topic == topic
        assert schema.key_field in schema.model_fields


def test_encode_decode_round_trip():
    event = payment_authorized(card_id="card-9")
    decoded = decode(event.topic, event.encode())
    assert decoded == event
    assert decoded.key() == "card-9"


def test_events_are_immutable():
    event = payment_authorized()
    with pytest.raises(ValueError, match="frozen"):
        event.amount_cents = 1


@pytest.mark.parametrize("kind", ["invalid_json", "schema", "unknown_version", "oversized"])
def test_each_kind_of_poison_is_recognised(kind):
    with pytest.raises(PoisonMessage) as caught:
        decode(PaymentAuthorized.topic, poison_values()[kind])
    assert caught.value.kind == kind


def test_unknown_topic_and_tombstone_are_poison():
    with pytest.raises(PoisonMessage, match="unknown_topic"):
        decode("payments.authorized.v9", payment_authorized().encode())
    with pytest.raises(PoisonMessage, match="tombstone"):
        decode(PaymentAuthorized.topic, None)


def test_naive_timestamps_and_extra_fields_are_refused():
    data = json.loads(payment_authorized().encode())
    with pytest.raises(PoisonMessage, match="occurred_at"):
        decode(
            PaymentAuthorized.topic,
            json.dumps({**data, "occurred_at": "2026-01-01T00:00:00"}).encode(),
        )
    with pytest.raises(PoisonMessage, match="card_number"):
        decode(PaymentAuthorized.topic, json.dumps({**data, "card_number": "4242"}).encode())
