"""Builders of booking rows for tests, through the services where the services own the write."""

from __future__ import annotations

import itertools
import json
from datetime import datetime

from django.contrib.auth import get_user_model

from events.contracts import RiderContext
from events.models import OutboxEvent
from rideshare import services
from rideshare.city import LatLng
from rideshare.models import Card, Driver, Rider, Trip

VISA_OK = "4242424242424242"
VISA_DECLINED = "4000000000000002"
VISA_NO_FUNDS = "4000000000009995"
MASTERCARD_OK = "5555555555554444"

# Two points in the city: Z-1-1 (south-west) to Z-4-4 (north-east), 9.048 km apart.
PICKUP = LatLng(52.33, 4.845)
DROPOFF = LatLng(52.39, 4.935)

DEVICE = "device-a"
_serial = itertools.count(1)


def context(device_id: str = DEVICE, ip: str = "203.0.113.7", lat=None, lng=None) -> RiderContext:
    return RiderContext(device_id=device_id, ip=ip, lat=lat, lng=lng)


def rider_make(username: str | None = None, *, device_id: str = DEVICE) -> Rider:
    """A rider whose last device is ``device_id`` (so acting from it publishes no DeviceChanged)."""
    username = username or f"rider{next(_serial)}"
    user = get_user_model().objects.create_user(username=username, password="pw-" + username)
    return Rider.objects.create(user=user, last_device_id=device_id)


def driver_make(username: str | None = None, *, zone: str = "Z-1-1") -> Driver:
    n = next(_serial)
    return services.driver_ensure(
        username=username or f"driver{n}",
        password="driver-pass",
        name=f"Driver {n}",
        vehicle_make="Toyota",
        vehicle_model="Prius",
        vehicle_plate=f"T-{n:04d}",
        zone=zone,
    )


def card_make(rider: Rider, number: str = VISA_OK, *, now: datetime | None = None) -> Card:
    return services.card_add(
        rider=rider,
        number=number,
        exp_month=12,
        exp_year=2099,
        cvc="123",
        context=context(rider.last_device_id or DEVICE),
        now=now,
    )


def trip_make(
    rider: Rider | None = None,
    *,
    card: Card | None = None,
    now: datetime | None = None,
) -> Trip:
    """A requested trip (fare authorised) from PICKUP to DROPOFF."""
    rider = rider or rider_make()
    card = card or card_make(rider, now=now)
    return services.trip_request(
        rider=rider,
        card=card,
        pickup=PICKUP,
        dropoff=DROPOFF,
        context=context(rider.last_device_id or DEVICE),
        now=now,
    )


def outbox_after(mark: int) -> list[tuple[str, str, dict]]:
    """Return (topic, key, payload) of the outbox rows written after row id ``mark``, in order."""
    rows = OutboxEvent.objects.filter(id__gt=mark).order_by("id")
    return [(row.topic, row.key, json.loads(row.payload)) for row in rows]


def outbox_mark() -> int:
    """Return the id of the newest outbox row (0 if none): pass it to ``outbox_after``."""
    last = OutboxEvent.objects.order_by("-id").first()
    return last.id if last else 0


def database_dump() -> str:
    """Return every row of every table as text, to grep for what must never be stored."""
    from django.db import connection

    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            chunks.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(chunks)


def row_counts() -> dict[str, int]:
    """Return the row count of every booking and outbox table."""
    from events.models import OutboxEvent
    from rideshare import models

    tables = [
        models.Rider,
        models.Card,
        models.Quote,
        models.Trip,
        models.Payment,
        models.ApiToken,
        models.ProcessorVault,
        models.ProcessorCharge,
        OutboxEvent,
    ]
    return {model.__name__: model.objects.count() for model in tables}


def bearer(user, *, device_id: str | None = DEVICE) -> dict[str, str]:
    """Request headers of an API client logged in as ``user`` (a token made through the service)."""
    key = services.api_token_create(user=user, context=context(device_id or DEVICE))
    headers = {"Authorization": f"Bearer {key}"}
    if device_id:
        headers["X-Device-Id"] = device_id
    return headers


# The device cookie of the web UI's test browser (well formed, so the middleware keeps it).
WEB_DEVICE = "web-device-0123456789abcdef"


def web_client(user=None, *, enforce_csrf_checks: bool = False, device_id: str = WEB_DEVICE):
    """A test browser carrying the device cookie ``device_id``, logged in as ``user`` if given."""
    from django.test import Client

    from rideshare.web.devices import DEVICE_COOKIE

    client = Client(enforce_csrf_checks=enforce_csrf_checks)
    client.cookies[DEVICE_COOKIE] = device_id
    if user is not None:
        client.force_login(user)
    return client


def web_rider(username: str | None = None) -> Rider:
    """A rider whose last device is the web test browser's."""
    return rider_make(username, device_id=WEB_DEVICE)
