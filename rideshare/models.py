"""Booking-side tables: riders, drivers, cards, quotes, trips, payments, API tokens.

Rows that events name carry a random ``public_id`` (UUID); events, URLs and API bodies use it,
never the sequential primary key, so ids are not guessable. The card processor's own tables
(``ProcessorVault``, ``ProcessorCharge``) live here too because the simulated processor shares
the database; nothing on the booking side reads them except ``rideshare.processor``.
"""

from __future__ import annotations

import hashlib
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from rideshare.city import LatLng


def _public_id() -> models.UUIDField:
    return models.UUIDField(default=uuid.uuid4, unique=True, editable=False)


class Rider(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="rider"
    )
    public_id = _public_id()
    signed_up_at = models.DateTimeField(default=timezone.now)
    home_zone = models.CharField(max_length=16, blank=True)
    # The device of the rider's latest action: a different one publishes DeviceChanged.
    last_device_id = models.CharField(max_length=64, blank=True)

    def __str__(self) -> str:
        return f"rider {self.user.get_username()}"


class Driver(models.Model):
    class Status(models.TextChoices):
        OFFLINE = "offline"
        AVAILABLE = "available"
        ON_TRIP = "on_trip"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="driver"
    )
    public_id = _public_id()
    name = models.CharField(max_length=100)
    vehicle_make = models.CharField(max_length=40)
    vehicle_model = models.CharField(max_length=40)
    vehicle_plate = models.CharField(max_length=16, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OFFLINE)
    zone = models.CharField(max_length=16, blank=True)
    lat = models.FloatField(null=True, blank=True)
    lng = models.FloatField(null=True, blank=True)

    def __str__(self) -> str:
        return f"driver {self.name} ({self.vehicle_plate})"


class ApiToken(models.Model):
    """A bearer token of the REST API. Only its SHA-256 is stored; the key is shown once."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"API token of {self.user_id} created {self.created_at:%Y-%m-%d %H:%M}"

    @staticmethod
    def hash_key(key: str) -> str:
        """Return the stored form of a bearer key: its SHA-256, hex."""
        return hashlib.sha256(key.encode()).hexdigest()


class Card(models.Model):
    """A tokenised payment card: the number itself is only ever held by the processor's side."""

    public_id = _public_id()
    rider = models.ForeignKey(Rider, on_delete=models.CASCADE, related_name="cards")
    brand = models.CharField(max_length=16)
    last4 = models.CharField(max_length=4)
    exp_month = models.PositiveSmallIntegerField()
    exp_year = models.PositiveSmallIntegerField()
    fingerprint = models.CharField(max_length=64, db_index=True)
    processor_token = models.CharField(max_length=64, unique=True)
    added_at = models.DateTimeField(default=timezone.now)
    is_active = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["rider", "fingerprint"],
                condition=Q(is_active=True),
                name="card_once_per_rider",
            )
        ]

    def __str__(self) -> str:
        return f"{self.brand} ending {self.last4}"


class Quote(models.Model):
    """A fare offered to a rider, valid until ``expires_at``; a trip can be requested from it."""

    public_id = _public_id()
    rider = models.ForeignKey(Rider, on_delete=models.CASCADE, related_name="quotes")
    pickup_lat = models.FloatField()
    pickup_lng = models.FloatField()
    pickup_zone = models.CharField(max_length=16)
    dropoff_lat = models.FloatField()
    dropoff_lng = models.FloatField()
    dropoff_zone = models.CharField(max_length=16)
    distance_km = models.FloatField()
    duration_minutes = models.FloatField()
    fare_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"quote {self.public_id} {self.fare_cents} {self.currency}"

    @property
    def pickup(self) -> LatLng:
        return LatLng(self.pickup_lat, self.pickup_lng)

    @property
    def dropoff(self) -> LatLng:
        return LatLng(self.dropoff_lat, self.dropoff_lng)


class Trip(models.Model):
    class Status(models.TextChoices):
        REQUESTED = "requested"
        DRIVER_ASSIGNED = "driver_assigned"
        PICKED_UP = "picked_up"
        COMPLETED = "completed"
        CANCELLED = "cancelled"
        # The authorisation was declined: the trip never became requested.
        PAYMENT_DECLINED = "payment_declined"

    class CancelledBy(models.TextChoices):
        RIDER = "rider"
        DRIVER = "driver"
        # The booking itself, acting on a fraud verdict (``cancel_reason`` says which).
        PLATFORM = "platform"

    class CancelReason(models.TextChoices):
        PAYMENT_RISK = "payment_risk", "the payment could not be verified"

    public_id = _public_id()
    rider = models.ForeignKey(Rider, on_delete=models.PROTECT, related_name="trips")
    driver = models.ForeignKey(
        Driver, on_delete=models.PROTECT, related_name="trips", null=True, blank=True
    )
    card = models.ForeignKey(Card, on_delete=models.PROTECT, related_name="trips")
    quote = models.OneToOneField(
        Quote, on_delete=models.PROTECT, related_name="trip", null=True, blank=True
    )
    pickup_lat = models.FloatField()
    pickup_lng = models.FloatField()
    pickup_zone = models.CharField(max_length=16)
    dropoff_lat = models.FloatField()
    dropoff_lng = models.FloatField()
    dropoff_zone = models.CharField(max_length=16)
    distance_km = models.FloatField()
    duration_minutes = models.FloatField()
    fare_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=20, choices=Status.choices)
    requested_at = models.DateTimeField()
    assigned_at = models.DateTimeField(null=True, blank=True)
    picked_up_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.CharField(max_length=8, choices=CancelledBy.choices, blank=True)
    cancel_reason = models.CharField(max_length=32, choices=CancelReason.choices, blank=True)
    cancellation_fee_cents = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["rider", "-requested_at"])]

    def __str__(self) -> str:
        return f"trip {self.public_id} ({self.status})"

    @property
    def pickup(self) -> LatLng:
        return LatLng(self.pickup_lat, self.pickup_lng)

    @property
    def dropoff(self) -> LatLng:
        return LatLng(self.dropoff_lat, self.dropoff_lng)


class Payment(models.Model):
    """The authorisation of a trip's fare and what became of it (capture, void, refund)."""

    class Status(models.TextChoices):
        AUTHORIZED = "authorized"
        DECLINED = "declined"
        CAPTURED = "captured"
        VOIDED = "voided"
        REFUNDED = "refunded"

    public_id = _public_id()
    trip = models.OneToOneField(Trip, on_delete=models.PROTECT, related_name="payment")
    rider = models.ForeignKey(Rider, on_delete=models.PROTECT, related_name="payments")
    card = models.ForeignKey(Card, on_delete=models.PROTECT, related_name="payments")
    amount_cents = models.PositiveIntegerField(help_text="amount authorised (or declined)")
    captured_cents = models.PositiveIntegerField(default=0)
    refunded_cents = models.PositiveIntegerField(default=0)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=16, choices=Status.choices)
    auth_code = models.CharField(max_length=32, blank=True)
    decline_code = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    # The fraud checks' verdict as read from ``fraud.scored.v1`` (approve, review, decline;
    # blank until it arrives) and the analysts' as read from ``reviews.decided.v1`` (its
    # reason: approved, legitimate, refunded_as_fraud, confirmed_fraud). Each is acted on once:
    # a later or replayed verdict changes nothing (``rideshare.services.verdicts``).
    risk_decision = models.CharField(max_length=16, blank=True)
    review_outcome = models.CharField(max_length=24, blank=True)
    # Not captured at the trip's completion until an analyst decides (a payment in review).
    capture_held = models.BooleanField(default=False)
    # Where the rider booked from (the authorisation's context): the capture checkpoint's
    # request carries it again.
    device_id = models.CharField(max_length=64, blank=True)
    ip = models.CharField(max_length=45, blank=True)
    # The capture checkpoint (``RIDESHARE_CAPTURE_WAIT_SECONDS`` > 0): at completion the fare
    # waits for its verdict (capture, hold, void: ``capture_decision`` once read) until
    # ``capture_due_at``, then is captured without it.
    capture_due_at = models.DateTimeField(null=True, blank=True)
    capture_decision = models.CharField(max_length=16, blank=True)

    def __str__(self) -> str:
        return f"payment {self.public_id} {self.amount_cents} {self.currency} ({self.status})"


class Chargeback(models.Model):
    """A dispute the card processor filed against a payment; ``processor_ref`` is the
    processor's own id for it, so a chargeback filed twice is recorded once."""

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="chargebacks")
    processor_ref = models.CharField(max_length=64, unique=True)
    reason_code = models.CharField(max_length=16)
    amount_cents = models.PositiveIntegerField()
    filed_at = models.DateTimeField(help_text="when the cardholder's bank filed it")
    received_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"chargeback {self.processor_ref} on {self.payment_id} ({self.reason_code})"


# The card processor's side. A real processor keeps these in its own systems.


class ProcessorVault(models.Model):
    """The processor's record of a tokenised card: how the card behaves, never its number."""

    class Behaviour(models.TextChoices):
        APPROVE = "approve"
        CARD_DECLINED = "card_declined"
        INSUFFICIENT_FUNDS = "insufficient_funds"

    token = models.CharField(max_length=64, unique=True)
    behaviour = models.CharField(max_length=32, choices=Behaviour.choices)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"vault {self.token[:12]}… {self.behaviour}"


class ProcessorCharge(models.Model):
    """The processor's ledger of one authorisation and its capture, void and refunds."""

    class Status(models.TextChoices):
        AUTHORIZED = "authorized"
        CAPTURED = "captured"
        VOIDED = "voided"

    auth_code = models.CharField(max_length=32, unique=True)
    vault = models.ForeignKey(ProcessorVault, on_delete=models.PROTECT, related_name="charges")
    amount_cents = models.PositiveIntegerField()
    captured_cents = models.PositiveIntegerField(default=0)
    refunded_cents = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"charge {self.auth_code} {self.amount_cents} ({self.status})"
