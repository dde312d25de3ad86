import json

import pytest

from events.contracts import (
    TOPICS,
    ChargebackFiled,
    PaymentAuthorized,
    PoisonMessage,
    ReviewDecided,
    RiderSignedUp,
    decode,
)
from tests.events.factories import (
    chargeback_filed,
    payment_authorized,
    poison_values,
    review_decided,
    rider_signed_up,
)


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


def test_the_sign_up_and_review_topics_are_declared_with_their_key_and_producer():
    assert TOPICS["riders.signed_up.v1"] is RiderSignedUp
    assert (RiderSignedUp.key_field, RiderSignedUp.producer) == ("rider_id", "rideshare")
    assert TOPICS["reviews.decided.v1"] is ReviewDecided
    assert (ReviewDecided.key_field, ReviewDecided.producer) == ("card_id", "fraud")
    assert ReviewDecided.model_fields["schema_version"].default == 1


def test_rider_signed_up_round_trips_keyed_by_rider():
    event = rider_signed_up(rider_id="rider-7")
    decoded = decode("riders.signed_up.v1", event.encode())
    assert decoded == event
    assert decoded.key() == "rider-7"
    assert json.loads(event.encode())["context"] == {
        "device_id": "dev-1",
        "ip": "127.0.0.1",
        "lat": 52.37,
        "lng": 4.89,
    }


def test_review_decided_round_trips_keyed_by_card():
    event = review_decided(card_id="card-5", decision="legitimate")
    decoded = decode("reviews.decided.v1", event.encode())
    assert decoded == event
    assert decoded.key() == "card-5"
    data = json.loads(event.encode())
    del data["event_id"], data["occurred_at"]
    assert data == {
        "schema_version": 1,
        "review_id": "review-1",
        "payment_id": "payment-1",
        "card_id": "card-5",
        "rider_id": "rider-1",
        "driver_id": "driver-1",
        "pickup_zone": "Z-1-1",
        "decision": "legitimate",
        "analyst": "analyst-1",
        "reason": None,
        "expired": False,
    }


def test_review_decided_reads_a_reason_and_refuses_an_unknown_one():
    data = json.loads(review_decided().encode())
    decoded = decode(
        "reviews.decided.v1", json.dumps({**data, "reason": "refunded_as_fraud"}).encode()
    )
    assert decoded.reason == "refunded_as_fraud"
    with pytest.raises(PoisonMessage, match="reason"):
        decode("reviews.decided.v1", json.dumps({**data, "reason": "shrug"}).encode())


def test_a_platform_cancellation_carries_its_reason_and_older_ones_read_without():
    from events.contracts import TripCancelled

    event = TripCancelled(
        trip_id="trip-1", rider_id="rider-1", cancelled_by="platform", fee_cents=0,
        stage="requested", reason="payment_risk",
    )  # fmt: skip
    data = json.loads(event.encode())
    assert (data["cancelled_by"], data["reason"]) == ("platform", "payment_risk")
    del data["reason"]
    assert decode("trips.cancelled.v1", json.dumps(data).encode()).reason is None
    with pytest.raises(PoisonMessage, match="cancelled_by"):
        decode("trips.cancelled.v1", json.dumps({**data, "cancelled_by": "ghost"}).encode())


def test_review_decided_leaves_driver_and_zone_optional():
    data = json.loads(review_decided().encode())
    del data["driver_id"], data["pickup_zone"]
    decoded = decode("reviews.decided.v1", json.dumps(data).encode())
    assert (decoded.driver_id, decoded.pickup_zone) == (None, None)


def test_review_decided_refuses_an_unknown_decision_and_an_overlong_analyst():
    data = json.loads(review_decided().encode())
    with pytest.raises(PoisonMessage, match="decision"):
        decode("reviews.decided.v1", json.dumps({**data, "decision": "maybe"}).encode())
    with pytest.raises(PoisonMessage, match="analyst"):
        decode("reviews.decided.v1", json.dumps({**data, "analyst": "a" * 151}).encode())


def test_an_enriched_chargeback_round_trips():
    event = chargeback_filed(card_id="card-3")
    decoded = decode(ChargebackFiled.topic, event.encode())
    assert decoded == event
    assert decoded.key() == "card-3"
    assert (decoded.trip_id, decoded.driver_id, decoded.pickup_zone) == (
        "trip-1",
        "driver-1",
        "Z-1-1",
    )


def test_a_chargeback_written_before_the_enrichment_still_decodes():
    old = {
        "event_id": "0b7e8c1e-58f4-4b3f-a3f2-5d2f0e7b9a10",
        "occurred_at": "2026-01-15T09:30:00Z",
        "schema_version": 1,
        "chargeback_id": "chargeback-1",
        "payment_id": "payment-1",
        "card_id": "card-1",
        "rider_id": "rider-1",
        "amount_cents": 1250,
        "reason_code": "10.4",
    }
    decoded = decode(ChargebackFiled.topic, json.dumps(old).encode())
    assert (decoded.payment_id, decoded.amount_cents, decoded.reason_code) == (
        "payment-1",
        1250,
        "10.4",
    )
    assert (decoded.trip_id, decoded.driver_id, decoded.pickup_zone) == (None, None, None)


def test_payment_authorized_carries_an_optional_non_negative_distance():
    data = json.loads(payment_authorized().encode())
    assert data["distance_km"] is None
    del data["distance_km"]
    assert decode(PaymentAuthorized.topic, json.dumps(data).encode()).distance_km is None
    with_distance = decode(
        PaymentAuthorized.topic, json.dumps({**data, "distance_km": 9.048}).encode()
    )
    assert with_distance.distance_km == 9.048
    with pytest.raises(PoisonMessage, match="distance_km"):
        decode(PaymentAuthorized.topic, json.dumps({**data, "distance_km": -1}).encode())
