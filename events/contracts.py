"""Event contracts: one immutable, versioned schema per topic, declared once in ``TOPICS``.

A topic's name carries its version (``payments.authorized.v1``); so does every payload
(``schema_version``), so a message of another version arriving on a topic is recognised as such.
Payloads are past tense, carry ``event_id`` and ``occurred_at`` (timezone-aware), and name the
field whose value is the partition key (``key_field``): records with the same key keep their
order. Money is in integer minor units (cents). No card number ever appears in an event; cards
are named by id, brand, last four digits and fingerprint.
"""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from events.bus import Record

# A message larger than this is poison: no legitimate event comes near it.
MAX_EVENT_BYTES = 64 * 1024

Cents = Annotated[int, Field(ge=0)]
Lat = Annotated[float, Field(ge=-90, le=90)]
Lng = Annotated[float, Field(ge=-180, le=180)]
Id = Annotated[str, Field(min_length=1, max_length=64)]


class Event(BaseModel):
    """Base of every event. Subclasses set ``topic``, ``key_field`` and a ``schema_version``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    topic: ClassVar[str]
    key_field: ClassVar[str]
    producer: ClassVar[str]

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    occurred_at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))

    def key(self) -> str:
        """Return the partition key: records with the same key are delivered in order."""
        return str(getattr(self, self.key_field))

    def encode(self) -> bytes:
        return self.model_dump_json().encode()

    def record(self, topic: str | None = None) -> Record:
        """Return the record that publishes this event, as the outbox relay does: keyed by
        ``key()``, its ``event_id`` in a header; on ``topic`` instead of the event's own (a
        namespaced one) when given."""
        return Record(
            topic=topic or self.topic,
            value=self.encode(),
            key=self.key(),
            headers=(("event_id", str(self.event_id).encode()),),
        )


class Place(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    lat: Lat
    lng: Lng
    zone: str = Field(max_length=32)


class RiderContext(BaseModel):
    """Where a rider acted from: what device-, network- and location-based features read."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    device_id: str = Field(max_length=64)
    ip: str = Field(max_length=45)
    lat: Lat | None = None
    lng: Lng | None = None


# Trips: keyed by rider, so one rider's trips (and each trip's lifecycle) stay in order.


class TripEvent(Event):
    """Fields every trip event shares; keyed by rider."""

    key_field = "rider_id"
    producer = "rideshare"
    schema_version: Literal[1] = 1

    trip_id: Id
    rider_id: Id


class TripRequested(TripEvent):
    topic = "trips.requested.v1"

    card_id: Id
    pickup: Place
    dropoff: Place
    distance_km: float = Field(ge=0)
    fare_cents: Cents
    currency: str = Field(min_length=3, max_length=3)
    context: RiderContext


class TripAssigned(TripEvent):
    topic = "trips.assigned.v1"

    driver_id: Id


class TripStarted(TripEvent):
    topic = "trips.started.v1"

    driver_id: Id


class TripCompleted(TripEvent):
    topic = "trips.completed.v1"

    driver_id: Id
    fare_cents: Cents
    distance_km: float = Field(ge=0)


class TripCancelled(TripEvent):
    topic = "trips.cancelled.v1"

    driver_id: Id | None = None
    # ``platform``: the booking cancelled it itself (a payment the fraud checks declined).
    cancelled_by: Literal["rider", "driver", "platform"]
    fee_cents: Cents
    stage: str = Field(max_length=32, description="trip status when cancelled")
    # Why, when the platform cancelled (``payment_risk``); None for riders' and drivers'.
    reason: str | None = Field(default=None, max_length=32)


# Payments and cards: keyed by card, so card-velocity windows see one card's history in order.


class PaymentEvent(Event):
    """Fields every payment event shares; keyed by card."""

    key_field = "card_id"
    producer = "rideshare"
    schema_version: Literal[1] = 1

    payment_id: Id
    trip_id: Id
    rider_id: Id
    card_id: Id
    amount_cents: Cents
    currency: str = Field(min_length=3, max_length=3)


class CheckpointPayment(PaymentEvent):
    """Fields of a payment event a fraud checkpoint scores: what its features and the analyst's
    case page read. ``checkpoint`` names the decision point (``FraudScored.checkpoint``)."""

    checkpoint: ClassVar[str]

    card_fingerprint: str = Field(max_length=64)
    pickup_zone: str = Field(max_length=32)
    context: RiderContext
    # The trip's planned distance, so fare per km is known at scoring time without a join.
    # Optional: payloads written before it existed still decode.
    distance_km: float | None = Field(default=None, ge=0)
    # What an analyst recognises a card by (never the number). Optional, as above.
    card_brand: str | None = Field(default=None, max_length=16)
    card_last4: str | None = Field(default=None, pattern=r"^[0-9]{4}$")
    # The trip's pickup and drop-off, for the analyst's map. Optional, as above.
    pickup: Place | None = None
    dropoff: Place | None = None


class PaymentAuthorized(CheckpointPayment):
    """The card was authorised for the quoted fare as the trip was requested: the first
    checkpoint scores it, before any driver is known."""

    topic = "payments.authorized.v1"
    checkpoint = "authorization"


class PaymentCaptureRequested(CheckpointPayment):
    """The trip is over and its fare (``amount_cents``) waits to be captured from the hold: the
    second checkpoint scores it with the driver known, and the booking captures, holds for an
    analyst or voids on its verdict (or captures once ``RIDESHARE_CAPTURE_WAIT_SECONDS`` pass
    without one). ``context`` is the rider's as the trip was booked."""

    topic = "payments.capture_requested.v1"
    checkpoint = "capture"

    driver_id: Id


class PaymentDeclined(PaymentEvent):
    topic = "payments.declined.v1"

    card_fingerprint: str = Field(max_length=64)
    decline_code: str = Field(max_length=32)
    context: RiderContext


class PaymentCaptured(PaymentEvent):
    topic = "payments.captured.v1"


class PaymentRefunded(PaymentEvent):
    topic = "payments.refunded.v1"

    reason: str = Field(max_length=64)


class CardAdded(Event):
    topic = "cards.added.v1"
    key_field = "card_id"
    producer = "rideshare"
    schema_version: Literal[1] = 1

    card_id: Id
    rider_id: Id
    brand: str = Field(max_length=16)
    last4: str = Field(pattern=r"^\d{4}$")
    exp_month: int = Field(ge=1, le=12)
    exp_year: int = Field(ge=2000, le=2100)
    fingerprint: str = Field(max_length=64)
    context: RiderContext


# Riders: keyed by rider.


class RiderEvent(Event):
    """Fields every rider event shares; keyed by rider."""

    key_field = "rider_id"
    producer = "rideshare"
    schema_version: Literal[1] = 1

    rider_id: Id
    context: RiderContext


class RiderSignedUp(RiderEvent):
    """A rider account was created; published before the sign-up's first login."""

    topic = "riders.signed_up.v1"


class RiderLoggedIn(RiderEvent):
    topic = "riders.logged_in.v1"


class DeviceChanged(RiderEvent):
    topic = "riders.device_changed.v1"

    previous_device_id: str | None = Field(default=None, max_length=64)


# Labels: arrive late; keyed by card like the payment they judge.


# The card networks' fraud category of chargeback reason codes (Visa 10.x): a chargeback with
# another reason ("services not received") disputes something else than fraud.
FRAUD_REASON_CATEGORY = "10."


def chargeback_is_fraud(reason_code: str) -> bool:
    """Return whether a chargeback's reason code is in the card networks' fraud category."""
    return reason_code.startswith(FRAUD_REASON_CATEGORY)


class ChargebackFiled(Event):
    topic = "labels.chargeback_filed.v1"
    key_field = "card_id"
    # The booking records the card processor's chargebacks (``POST /api/processor/chargebacks``);
    # the simulator writes its history's directly.
    producer = "rideshare (from the card processor), simulator"
    schema_version: Literal[1] = 1

    chargeback_id: Id
    payment_id: Id
    card_id: Id
    rider_id: Id
    amount_cents: Cents
    reason_code: str = Field(max_length=16)
    # Where the disputed payment happened, so zone and driver windows need no join. Optional:
    # payloads written before these fields existed still decode.
    trip_id: Id | None = None
    driver_id: Id | None = None
    pickup_zone: str | None = Field(default=None, max_length=32)
    # When the cardholder's bank filed it; ``occurred_at`` is when the label became known
    # (the booking received it), the moment it counts from.
    filed_at: datetime | None = None


class ReviewDecided(Event):
    """An analyst's decision on a review item (a payment the scorer sent for review)."""

    topic = "reviews.decided.v1"
    key_field = "card_id"
    producer = "fraud"
    schema_version: Literal[1] = 1

    review_id: Id
    payment_id: Id
    card_id: Id
    rider_id: Id
    driver_id: Id | None = None
    pickup_zone: str | None = Field(default=None, max_length=32)
    # The label the learning loop reads.
    decision: Literal["confirmed_fraud", "legitimate"]
    analyst: str = Field(max_length=150)
    # How the review was closed, which says what happens to the payment: ``approved``
    # (captured), ``legitimate`` (not fraud, but refunded or voided), ``refunded_as_fraud``
    # (refunded or voided, suspected), ``confirmed_fraud`` (refunded or voided, card blocked).
    # None from older producers: read as ``approved`` for ``legitimate`` and
    # ``confirmed_fraud`` for fraud.
    reason: Literal["approved", "legitimate", "refunded_as_fraud", "confirmed_fraud"] | None = None
    # Closed by the expiry policy, nobody having decided: not a label.
    expired: bool = False


# Fraud: keyed by card like the payment scored.


class PolicyMatch(BaseModel):
    """A list entry or rule that matched a payment (``fraud.policy``), acted on or not."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["list", "rule"]
    id: int
    name: str = Field(max_length=100)
    action: Literal["block", "review", "allow"]
    acted: bool
    shadow: bool = False


class ScoreReason(BaseModel):
    """One reason behind a score: the feature and its value in plain words."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    feature: str = Field(max_length=64)
    text: str = Field(max_length=300)


class FraudScored(Event):
    """A checkpoint's verdict on one payment event: exactly one per event scored.

    At ``authorization`` (``payments.authorized.v1``) the decision approves, sends to review or
    declines the booking; at ``capture`` (``payments.capture_requested.v1``) the same three
    words capture the fare, hold it for an analyst, or void the hold."""

    topic = "fraud.scored.v1"
    key_field = "card_id"
    producer = "fraud"
    schema_version: Literal[1] = 1

    payment_id: Id
    # The event_id of the payment event scored (``payments.authorized.v1`` at authorization,
    # ``payments.capture_requested.v1`` at capture).
    payment_event_id: uuid.UUID
    card_id: Id
    rider_id: Id
    score: float = Field(ge=0, le=1)
    decision: Literal["approve", "review", "decline"]
    model_version: str = Field(min_length=1, max_length=64)
    # Scored with default values for features the store could not serve.
    degraded: bool = False
    # Whether the features served are those the training join gives for the payment
    # (``exact``) or not known to be (``stale``); None from scorers before the mark.
    consistency: Literal["exact", "stale"] | None = None
    reasons: list[ScoreReason] = Field(default_factory=list, max_length=3)
    # The lists and rules that matched, acted on or not (shadow rules too).
    matched: list[PolicyMatch] = Field(default_factory=list, max_length=100)
    # Which checkpoint decided; verdicts before the capture checkpoint existed are the
    # authorization's.
    checkpoint: Literal["authorization", "capture"] = "authorization"


EVENT_TYPES: tuple[type[Event], ...] = (
    TripRequested,
    TripAssigned,
    TripStarted,
    TripCompleted,
    TripCancelled,
    PaymentAuthorized,
    PaymentDeclined,
    PaymentCaptureRequested,
    PaymentCaptured,
    PaymentRefunded,
    CardAdded,
    RiderSignedUp,
    RiderLoggedIn,
    DeviceChanged,
    ChargebackFiled,
    ReviewDecided,
    FraudScored,
)

# topic name -> schema; the single declaration of every topic
TOPICS: dict[str, type[Event]] = {cls.topic: cls for cls in EVENT_TYPES}


def topic_name(namespace: str, topic: str) -> str:
    """Return ``topic`` (a declared name) under ``namespace`` when given:
    ``<namespace>.<topic>``, so several environments (tests, benchmarks) share one broker."""
    return f"{namespace}.{topic}" if namespace else topic


def dead_letter_topic(consumer: str, *, namespace: str = "") -> str:
    """Return the dead-letter topic of ``consumer`` (one per consumer, so replays stay scoped),
    under ``namespace`` when given (``<namespace>.deadletter.<consumer>``)."""
    return topic_name(namespace, f"deadletter.{consumer}")


class PoisonMessage(Exception):
    """A record no handler can process: it goes to the dead-letter topic, never retried."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


@functools.lru_cache(maxsize=1024)
def schema_for(topic: str) -> type[Event] | None:
    """Return the schema of ``topic``: a declared topic, or ``<namespace>.<declared topic>``
    (several environments, or tests, sharing one cluster). Cached: asked for every record
    consumed, and a namespaced name is otherwise matched against every declared topic."""
    schema = TOPICS.get(topic)
    if schema is None:
        schema = next((s for name, s in TOPICS.items() if topic.endswith("." + name)), None)
    return schema


# Fields every record must carry itself (``decode_record``).
IDENTITY_FIELDS = ("event_id", "occurred_at")


def decode(topic: str, value: bytes | None) -> Event:
    """Parse and validate a record's value against its topic's schema.

    Raise ``PoisonMessage`` with kind ``unknown_topic``, ``oversized``, ``invalid_json``,
    ``unknown_version`` or ``schema`` when the record cannot be an event of that topic.
    """
    return decode_record(topic, value)[0]


def decode_record(topic: str, value: bytes | None) -> tuple[Event, dict[str, Any]]:
    """Return the event ``decode`` returns and the JSON object it was validated from, for the
    consumers that read the payload as sent (the stream views' rows): the bytes are parsed
    once. Raise ``PoisonMessage`` as ``decode`` does."""
    schema = schema_for(topic)
    if schema is None:
        raise PoisonMessage("unknown_topic", f"no schema is declared for topic {topic!r}")
    if value is None:
        raise PoisonMessage("schema", "empty record (tombstone)")
    if len(value) > MAX_EVENT_BYTES:
        raise PoisonMessage("oversized", f"{len(value)} bytes > {MAX_EVENT_BYTES}")
    try:
        # orjson: several times faster than the json module, on every record consumed. Strict:
        # NaN and Infinity (not JSON) and integers past 64 bits are refused.
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise PoisonMessage("invalid_json", str(exc)) from exc
    if not isinstance(data, dict):
        raise PoisonMessage("schema", f"expected a JSON object, got {type(data).__name__}")
    # The defaults that let a producer build an event (a fresh id, now) must not fill in a
    # record's identity: decoded twice, it would be two events, applied twice.
    missing = [name for name in IDENTITY_FIELDS if name not in data]
    if missing:
        raise PoisonMessage("schema", f"{', '.join(missing)}: Field required")
    expected = schema.model_fields["schema_version"].default
    if data.get("schema_version", expected) != expected:
        raise PoisonMessage(
            "unknown_version",
            f"schema_version {data.get('schema_version')!r} on {topic} (expects {expected})",
        )
    try:
        return schema.model_validate(data), data
    except ValidationError as exc:
        raise PoisonMessage("schema", _summarise(exc)) from exc


def _summarise(exc: ValidationError) -> str:
    parts = [f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in exc.errors()[:5]]
    return "; ".join(parts)
