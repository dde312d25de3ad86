"""Events for tests: valid ones of each shape, and each kind of poison."""

import json
import uuid

from events.contracts import (
    MAX_EVENT_BYTES,
    TOPICS,
    ChargebackFiled,
    PaymentAuthorized,
    ReviewDecided,
    RiderContext,
    RiderSignedUp,
    TripRequested,
)
from events.models import LedgerEntry
from events.registry import ConsumerSpec


def payment_authorized(*, card_id: str = "card-1", amount_cents: int = 1250) -> PaymentAuthorized:
    return PaymentAuthorized(
        payment_id=uuid.uuid4().hex,
        trip_id=uuid.uuid4().hex,
        rider_id="rider-1",
        card_id=card_id,
        card_fingerprint="fp-" + card_id,
        amount_cents=amount_cents,
        currency="EUR",
        pickup_zone="Z-1-1",
        context=RiderContext(device_id="dev-1", ip="127.0.0.1", lat=52.37, lng=4.89),
    )


def trip_requested(*, rider_id: str = "rider-1") -> TripRequested:
    place = {"lat": 52.37, "lng": 4.89, "zone": "Z-1-1"}
    return TripRequested(
        trip_id=uuid.uuid4().hex,
        rider_id=rider_id,
        card_id="card-1",
        pickup=place,
        dropoff={**place, "lat": 52.38},
        distance_km=1.1,
        fare_cents=900,
        currency="EUR",
        context=RiderContext(device_id="dev-1", ip="127.0.0.1"),
    )


def rider_signed_up(*, rider_id: str = "rider-1") -> RiderSignedUp:
    return RiderSignedUp(
        rider_id=rider_id,
        context=RiderContext(device_id="dev-1", ip="127.0.0.1", lat=52.37, lng=4.89),
    )


def chargeback_filed(*, card_id: str = "card-1") -> ChargebackFiled:
    return ChargebackFiled(
        chargeback_id="chargeback-1",
        payment_id="payment-1",
        card_id=card_id,
        rider_id="rider-1",
        amount_cents=1250,
        reason_code="10.4",
        trip_id="trip-1",
        driver_id="driver-1",
        pickup_zone="Z-1-1",
    )


def review_decided(
    *, card_id: str = "card-1", decision: str = "confirmed_fraud", analyst: str = "analyst-1"
) -> ReviewDecided:
    return ReviewDecided(
        review_id="review-1",
        payment_id="payment-1",
        card_id=card_id,
        rider_id="rider-1",
        driver_id="driver-1",
        pickup_zone="Z-1-1",
        decision=decision,
        analyst=analyst,
    )


def poison_values() -> dict[str, bytes]:
    """Return one poison record value of each kind, for payments.authorized.v1."""
    valid = json.loads(payment_authorized().encode())
    return {
        "invalid_json": b'{"event_id": "not closed',
        "schema": json.dumps({**valid, "amount_cents": "lots"}).encode(),
        "unknown_version": json.dumps({**valid, "schema_version": 2}).encode(),
        "oversized": json.dumps({**valid, "padding": "x" * MAX_EVENT_BYTES}).encode(),
    }


def ledger_spec(
    name: str, topics: tuple[str, ...] = tuple(TOPICS), *, batch: bool = False
) -> ConsumerSpec:
    """The event-ledger consumer under the group ``name`` (one per test), on ``topics``; with
    ``batch``, applying each batch's new events at once as the registered one does."""
    return ConsumerSpec(
        name=name,
        handler="events.ledger.handle_event",
        batch_handler="events.ledger.handle_events" if batch else None,
        topics=topics,
    )


def ledger_handler_failing_on(amount_cents: int, topic: str):
    """Return an event-ledger handler that raises on payments of ``amount_cents`` and records
    every other event of ``topic`` (a handler bug that a fix and a redrive resolve)."""

    def handler(event):
        if event.amount_cents == amount_cents:
            raise ValueError(f"cannot handle {amount_cents}")
        LedgerEntry.objects.create(
            event_id=event.event_id, topic=topic, key=event.key(), occurred_at=event.occurred_at
        )

    return handler
