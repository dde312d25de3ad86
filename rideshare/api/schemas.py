"""Request and response bodies of the REST API, and how booking rows map onto them."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Literal

from ninja import Schema
from pydantic import AfterValidator, Field, SecretStr
from pydantic_core import PydanticCustomError

from events.contracts import Lat, Lng
from rideshare.city import LatLng
from rideshare.models import Card, Driver, Quote, Trip
from rideshare.selectors import CancellationPreview

# Control characters (NUL among them) and unpaired surrogates: JSON carries them, but PostgreSQL
# stores neither in a text column or a JSON document, nor does UTF-8 encode a lone surrogate
# (a password is hashed as UTF-8). Refused where a request is read, so no such value reaches the
# database, the outbox or a hasher as a server error.
_NOT_TEXT = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
NOT_TEXT_MESSAGE = "Enter plain text, without control characters."


def plain_text(value: str) -> bool:
    """Return whether ``value`` has no control character and no unpaired surrogate."""
    return _NOT_TEXT.search(value) is None


def _text(value: str) -> str:
    if not plain_text(value):
        raise PydanticCustomError("plain_text", NOT_TEXT_MESSAGE)
    return value


def _secret_text(value: SecretStr) -> SecretStr:
    _text(value.get_secret_value())
    return value


Text = Annotated[str, AfterValidator(_text)]
SecretText = Annotated[SecretStr, AfterValidator(_secret_text)]


class ErrorOut(Schema):
    code: str
    detail: str
    errors: dict[str, str] | None = Field(
        default=None, description="field -> message, for invalid input"
    )


class PointIn(Schema):
    lat: Lat
    lng: Lng

    def as_latlng(self) -> LatLng:
        return LatLng(self.lat, self.lng)


class PlaceOut(Schema):
    lat: float
    lng: float
    zone: str


class TokenIn(Schema):
    username: Text = Field(min_length=1, max_length=150)
    password: SecretText = Field(min_length=1, max_length=4096)


class TokenOut(Schema):
    token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 (the scheme's name, not a secret)


class QuoteIn(Schema):
    pickup: PointIn
    dropoff: PointIn
    location: PointIn | None = Field(
        default=None, description="where the rider is; the pickup point when omitted"
    )


class QuoteOut(Schema):
    id: uuid.UUID
    pickup: PlaceOut
    dropoff: PlaceOut
    distance_km: float
    duration_minutes: float
    fare_cents: int
    currency: str
    expires_at: datetime


class TripRequestIn(Schema):
    card_id: uuid.UUID
    quote_id: uuid.UUID | None = Field(default=None, description="or give pickup and dropoff")
    pickup: PointIn | None = None
    dropoff: PointIn | None = None
    location: PointIn | None = Field(
        default=None, description="where the rider is; the pickup point when omitted"
    )


class CardBriefOut(Schema):
    id: uuid.UUID
    brand: str
    last4: str


class DriverOut(Schema):
    id: uuid.UUID
    name: str
    vehicle_make: str
    vehicle_model: str
    vehicle_plate: str


class TripOut(Schema):
    id: uuid.UUID
    status: str
    pickup: PlaceOut
    dropoff: PlaceOut
    distance_km: float
    duration_minutes: float
    fare_cents: int
    currency: str
    card: CardBriefOut | None = Field(default=None, description="shown to the rider only")
    driver: DriverOut | None
    payment_status: str | None = Field(default=None, description="shown to the rider only")
    requested_at: datetime
    assigned_at: datetime | None
    picked_up_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    cancelled_by: str
    cancellation_fee_cents: int


class CancellationPreviewOut(Schema):
    can_cancel: bool
    fee_cents: int
    currency: str
    status: str
    free_until: datetime | None = Field(
        description="end of the free cancellation; null while no driver is assigned"
    )


class CancelIn(Schema):
    confirm_fee_cents: int = Field(
        default=0, ge=0, description="the fee shown by the cancellation preview, when one applies"
    )
    location: PointIn | None = None


class CardIn(Schema):
    number: SecretText = Field(description="the full card number; never stored or shown")
    exp_month: int
    exp_year: int
    cvc: SecretText = Field(description="3 or 4 digits; checked and discarded")
    location: PointIn | None = None


class CardOut(Schema):
    id: uuid.UUID
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    added_at: datetime
    is_active: bool


def quote_out(quote: Quote) -> dict:
    return {
        "id": quote.public_id,
        "pickup": {"lat": quote.pickup_lat, "lng": quote.pickup_lng, "zone": quote.pickup_zone},
        "dropoff": {
            "lat": quote.dropoff_lat,
            "lng": quote.dropoff_lng,
            "zone": quote.dropoff_zone,
        },
        "distance_km": quote.distance_km,
        "duration_minutes": quote.duration_minutes,
        "fare_cents": quote.fare_cents,
        "currency": quote.currency,
        "expires_at": quote.expires_at,
    }


def driver_out(driver: Driver | None) -> dict | None:
    if driver is None:
        return None
    return {
        "id": driver.public_id,
        "name": driver.name,
        "vehicle_make": driver.vehicle_make,
        "vehicle_model": driver.vehicle_model,
        "vehicle_plate": driver.vehicle_plate,
    }


def trip_out(trip: Trip, *, for_rider: bool = True) -> dict:
    """Return ``trip`` as a ``TripOut`` body; a driver is not shown the rider's card or payment."""
    payment = getattr(trip, "payment", None)
    return {
        "id": trip.public_id,
        "status": trip.status,
        "pickup": {"lat": trip.pickup_lat, "lng": trip.pickup_lng, "zone": trip.pickup_zone},
        "dropoff": {"lat": trip.dropoff_lat, "lng": trip.dropoff_lng, "zone": trip.dropoff_zone},
        "distance_km": trip.distance_km,
        "duration_minutes": trip.duration_minutes,
        "fare_cents": trip.fare_cents,
        "currency": trip.currency,
        "card": (
            {"id": trip.card.public_id, "brand": trip.card.brand, "last4": trip.card.last4}
            if for_rider
            else None
        ),
        "driver": driver_out(trip.driver),
        "payment_status": payment.status if for_rider and payment is not None else None,
        "requested_at": trip.requested_at,
        "assigned_at": trip.assigned_at,
        "picked_up_at": trip.picked_up_at,
        "completed_at": trip.completed_at,
        "cancelled_at": trip.cancelled_at,
        "cancelled_by": trip.cancelled_by,
        "cancellation_fee_cents": trip.cancellation_fee_cents,
    }


def card_out(card: Card) -> dict:
    return {
        "id": card.public_id,
        "brand": card.brand,
        "last4": card.last4,
        "exp_month": card.exp_month,
        "exp_year": card.exp_year,
        "added_at": card.added_at,
        "is_active": card.is_active,
    }


def cancellation_preview_out(preview: CancellationPreview) -> dict:
    return {
        "can_cancel": preview.can_cancel,
        "fee_cents": preview.fee_cents,
        "currency": preview.currency,
        "status": preview.status,
        "free_until": preview.free_until,
    }
