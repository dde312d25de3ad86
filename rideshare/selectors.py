"""Read-only queries of the booking side."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import DatabaseError, connection
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from rideshare import cards, lifecycle, pricing
from rideshare.models import ApiToken, Card, Driver, Quote, Rider, Trip


def platform_status() -> dict:
    """Return which backends this process is configured with and whether its database answers."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        database = {"ok": True, "vendor": connection.vendor}
    except DatabaseError as exc:
        database = {"ok": False, "vendor": connection.vendor, "error": str(exc)}
    layer = settings.CHANNEL_LAYERS["default"]["BACKEND"].rsplit(".", 1)[-1]
    broker = settings.CELERY_BROKER_URL.split(":", 1)[0]
    return {
        "database": database,
        "event_bus": settings.EVENT_BUS,
        "channel_layer": layer,
        "celery_broker": broker,
    }


def api_token_user(*, key: str) -> AbstractBaseUser | None:
    """Return the active user holding the bearer ``key``, or None."""
    token = (
        ApiToken.objects.select_related("user")
        .filter(key_hash=ApiToken.hash_key(key), user__is_active=True)
        .first()
    )
    return token.user if token else None


def rider_of_user(user: AbstractBaseUser) -> Rider | None:
    """Return ``user``'s rider profile, or None."""
    return Rider.objects.filter(user_id=user.pk).first()


def driver_of_user(user: AbstractBaseUser) -> Driver | None:
    """Return ``user``'s driver profile, or None."""
    return Driver.objects.filter(user_id=user.pk).first()


def trips_of_rider(*, rider: Rider) -> QuerySet[Trip]:
    """Return ``rider``'s trips, newest first, with driver, card and payment loaded."""
    return (
        Trip.objects.filter(rider=rider)
        .select_related("rider", "driver", "card", "payment")
        .order_by("-requested_at", "-id")
    )


def rider_trip(*, user: AbstractBaseUser, trip_id: uuid.UUID | str) -> Trip | None:
    """Return the trip ``trip_id`` (its ``public_id``) if ``user`` is its rider, else None."""
    rider = rider_of_user(user) if user.is_authenticated else None
    if rider is None:
        return None
    return trips_of_rider(rider=rider).filter(public_id=trip_id).first()


# The trips the rider was charged for: completed, or cancelled with a fee.
_CHARGED = Q(status=Trip.Status.COMPLETED) | Q(
    status=Trip.Status.CANCELLED, cancellation_fee_cents__gt=0
)


def receipts_of_rider(*, rider: Rider) -> QuerySet[Trip]:
    """Return ``rider``'s trips that have a receipt: completed, or cancelled with a fee charged."""
    return trips_of_rider(rider=rider).filter(_CHARGED)


def trip_has_receipt(*, trip: Trip) -> bool:
    """Return whether ``trip`` has a receipt (see ``receipts_of_rider``)."""
    return Trip.objects.filter(_CHARGED, pk=trip.pk).exists()


def trips_for_driver(*, driver: Driver) -> QuerySet[Trip]:
    """Return the trips ``driver`` may see: every trip waiting for a driver and its own trips."""
    return (
        Trip.objects.filter(Q(status=Trip.Status.REQUESTED) | Q(driver=driver))
        .select_related("rider", "driver", "card", "payment")
        .order_by("-requested_at", "-id")
    )


@dataclass(frozen=True)
class DriverBoard:
    active: Trip | None
    requested: list[Trip]
    recent: list[Trip]


DRIVER_BOARD_RECENT = 5


def driver_board(*, driver: Driver) -> DriverBoard:
    """Return what ``driver``'s console shows.

    That is its trip under way (if any), the trips waiting for a driver (oldest first: the
    longest wait is served first) and its last ``DRIVER_BOARD_RECENT`` finished trips.
    """
    trips = trips_for_driver(driver=driver)
    under_way = (Trip.Status.DRIVER_ASSIGNED, Trip.Status.PICKED_UP)
    return DriverBoard(
        active=trips.filter(driver=driver, status__in=under_way).first(),
        requested=list(trips.filter(status=Trip.Status.REQUESTED).order_by("requested_at", "id")),
        recent=list(
            trips.filter(driver=driver).exclude(status__in=under_way)[:DRIVER_BOARD_RECENT]
        ),
    )


def cards_of_rider(*, rider: Rider, active_only: bool = False) -> QuerySet[Card]:
    """Return ``rider``'s cards, newest first (only the active ones if ``active_only``)."""
    cards_qs = Card.objects.filter(rider=rider).select_related("rider")
    if active_only:
        cards_qs = cards_qs.filter(is_active=True)
    return cards_qs.order_by("-added_at", "-id")


@sensitive_variables("number")
def card_of_rider_by_number(*, rider: Rider, number: str) -> Card | None:
    """Return ``rider``'s active card with this number (matched by fingerprint), or None."""
    fingerprint = cards.fingerprint(number, key=settings.SECRET_KEY)
    return cards_of_rider(rider=rider, active_only=True).filter(fingerprint=fingerprint).first()


def quotes_of_rider(*, rider: Rider) -> QuerySet[Quote]:
    """Return ``rider``'s quotes."""
    return Quote.objects.filter(rider=rider)


@dataclass(frozen=True)
class CancellationPreview:
    can_cancel: bool
    fee_cents: int
    currency: str
    status: str
    free_until: datetime | None


def trip_cancellation_preview(*, trip: Trip, now: datetime | None = None) -> CancellationPreview:
    """Return whether the rider may cancel ``trip`` at ``now`` and the fee that would apply.

    This is what the rider is warned with before confirming; ``trip_cancel`` charges the same
    fee (and refuses unless the rider confirms it).
    """
    now = now or timezone.now()
    can_cancel = lifecycle.allowed(lifecycle.RIDER_CANCEL, trip.status)
    fee = (
        pricing.rider_cancellation_fee_cents(
            assigned_at=trip.assigned_at, fare_cents=trip.fare_cents, now=now
        )
        if can_cancel
        else 0
    )
    return CancellationPreview(
        can_cancel=can_cancel,
        fee_cents=fee,
        currency=trip.currency,
        status=trip.status,
        free_until=pricing.cancellation_free_until(trip.assigned_at) if can_cancel else None,
    )
