"""Replay mode: an external file of payments streamed through the pipeline as the app's events.

Input: CSV (header row; ``,`` separated) or Parquet (by the ``.parquet`` suffix). Columns:

- ``timestamp`` (required): ISO 8601 (UTC when it has no offset) or Unix seconds;
- ``rider``, ``card`` (required): ids, at most 64 characters, used as ``rider_id``/``card_id``;
- ``amount`` (required): in currency units (``12.50`` is 1250 cents);
- ``driver``: a driver id; the trip is assigned, started, completed and its fare captured (at
  the row's time plus 2 minutes, 6 minutes, 6 minutes + the ride: 1 minute and 0 km without
  the coordinates), so a driver alone attributes the payment to its driver's features;
- ``pickup_lat``, ``pickup_lng``, ``dropoff_lat``, ``dropoff_lng``: points in the city; the
  pickup gives the payment's zone, all four a ``TripRequested``;
- ``label``: 1/true/yes (fraud) or 0/false/no; with this column the ground truth is recorded
  and fraudulent payments are charged back (``ChargebackFiled``, the configured fraction and
  delay);
- ``currency`` (default EUR), ``device``, ``ip`` (the ``RiderContext``), ``decline_code``
  (non-empty: the payment was declined, ``PaymentDeclined``).

Each row gives a ``PaymentAuthorized`` (or ``PaymentDeclined``) at its timestamp, the first row
of a card a ``CardAdded`` before it (its first sighting: replayed cards are not all "new", nor
all unknown). A bad row is
reported with its line number (CSV: the header is line 1; Parquet: the row's number from 1),
counted as an error and skipped. Ids of the events are derived from the file's content and the
line (UUID 5), so replaying the same file again produces the same events, which idempotent
consumers skip. ``speedup`` 60 plays an hour of the file in a minute; 0 plays it as fast as
possible. Follow-up events (trip steps, chargebacks) wait for the file's clock to reach them;
those still waiting at the end of the file are sent then, in time order.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import math
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from events.bus import Bus
from events.contracts import (
    CardAdded,
    ChargebackFiled,
    Event,
    PaymentAuthorized,
    PaymentCaptured,
    PaymentCaptureRequested,
    PaymentDeclined,
    Place,
    RiderContext,
    TripAssigned,
    TripCompleted,
    TripRequested,
    TripStarted,
)
from events.payments_file import (
    BadRow,
    amount_cents,
    label,
    text,
    timestamp,
)
from simulator.city import City
from simulator.config import LabelConfig
from simulator.engine import Emitted, Truth, fare
from simulator.labels import REASON_FRAUD, chargeback_delay
from simulator.load import publish_batch
from simulator.report import Stats

COORDINATES = ("pickup_lat", "pickup_lng", "dropoff_lat", "dropoff_lng")
ID_NAMESPACE = uuid.UUID("5b0c1f7e-4d0a-4b8e-9a51-3f7c2e0d9a10")


@dataclass(frozen=True)
class ReplayRow:
    line: int
    at: datetime
    rider: str
    card: str
    amount_cents: int
    currency: str
    driver: str
    pickup: Place | None
    dropoff: Place | None
    label: bool | None
    device: str
    ip: str
    decline_code: str


def _point(raw: dict, city: City, lat_name: str, lng_name: str) -> Place | None:
    lat, lng = raw.get(lat_name), raw.get(lng_name)
    if lat in (None, "") and lng in (None, ""):
        return None
    try:
        lat_f, lng_f = float(lat), float(lng)
    except (TypeError, ValueError):
        raise BadRow(f"{lat_name}/{lng_name} ({lat!r}, {lng!r}) is not a point") from None
    zone = city.zone_for(lat_f, lng_f) if math.isfinite(lat_f + lng_f) else None
    if zone is None:
        raise BadRow(f"{lat_name}/{lng_name} ({lat_f}, {lng_f}) is outside the city")
    return Place(lat=lat_f, lng=lng_f, zone=zone)


def parse_row(line: int, raw: dict, city: City) -> ReplayRow:
    """Return the row checked and typed; raise ``BadRow`` saying what is wrong with it."""
    rider, card = text(raw, "rider"), text(raw, "card")
    if not rider or not card:
        raise BadRow("rider and card are required")
    currency = (text(raw, "currency") or "EUR").upper()
    if len(currency) != 3 or not currency.isalpha():
        raise BadRow(f"currency {currency!r} is not a 3-letter code")
    return ReplayRow(
        line=line,
        at=timestamp(raw.get("timestamp")),
        rider=rider,
        card=card,
        amount_cents=amount_cents(raw.get("amount")),
        currency=currency,
        driver=text(raw, "driver"),
        pickup=_point(raw, city, "pickup_lat", "pickup_lng"),
        dropoff=_point(raw, city, "dropoff_lat", "dropoff_lng"),
        label=label(raw),
        device=text(raw, "device") or f"replay-{hashlib.sha256(rider.encode()).hexdigest()[:16]}",
        ip=text(raw, "ip", limit=45) or "0.0.0.0",  # noqa: S104 (unknown address, not a bind)
        decline_code=text(raw, "decline_code", limit=32),
    )


class RowEvents:
    """Turns rows into (time, event, truth); ids from the file's salt and the row's line."""

    def __init__(self, *, salt: str, labels: LabelConfig, seed: int):
        self.salt = salt
        self.labels = labels
        self.rng = random.Random(f"replay-labels:{seed}")
        # Cards seen so far: a card's first row is its first sighting (``CardAdded``).
        self.cards: set[str] = set()

    def _id(self, row: ReplayRow, what: str) -> str:
        return str(uuid.uuid5(ID_NAMESPACE, f"{self.salt}:{row.line}:{what}"))

    def _event(self, cls: type[Event], row: ReplayRow, at: datetime, **fields) -> Event:
        return cls(event_id=self._id(row, cls.topic), occurred_at=at, **fields)

    def _requested(
        self, row: ReplayRow, at: datetime, km: float | None, context: RiderContext, ids: dict
    ) -> Event:
        return self._event(
            TripRequested,
            row,
            at,
            card_id=row.card,
            pickup=row.pickup,
            dropoff=row.dropoff,
            distance_km=km,
            fare_cents=row.amount_cents,
            currency=row.currency,
            context=context,
            **ids,
        )

    def events(self, row: ReplayRow) -> list[tuple[datetime, Emitted]]:
        at = row.at
        truth = None if row.label is None else Truth(row.label, "replay" if row.label else "")
        payment_id, trip_id = self._id(row, "payment"), self._id(row, "trip")
        context = RiderContext(
            device_id=row.device,
            ip=row.ip,
            lat=row.pickup.lat if row.pickup else None,
            lng=row.pickup.lng if row.pickup else None,
        )
        common = {
            "payment_id": payment_id,
            "trip_id": trip_id,
            "rider_id": row.rider,
            "card_id": row.card,
            "card_fingerprint": hashlib.sha256(f"card:{row.card}".encode()).hexdigest(),
            "amount_cents": row.amount_cents,
            "currency": row.currency,
            "context": context,
        }
        out: list[tuple[datetime, Emitted]] = []
        if row.card not in self.cards:
            self.cards.add(row.card)
            digits = f"{int(hashlib.sha256(row.card.encode()).hexdigest()[:8], 16) % 10_000:04d}"
            added = self._event(
                CardAdded,
                row,
                at,
                card_id=row.card,
                rider_id=row.rider,
                brand="unknown",
                last4=digits,
                exp_month=12,
                exp_year=2099,
                fingerprint=common["card_fingerprint"],
                context=context,
            )
            out.append((at, Emitted(added, None)))
        if row.decline_code:
            event = self._event(PaymentDeclined, row, at, decline_code=row.decline_code, **common)
            return [*out, (at, Emitted(event, truth))]
        zone = row.pickup.zone if row.pickup else ""
        routed = row.pickup is not None and row.dropoff is not None
        km, minutes, _ = fare(row.pickup, row.dropoff) if routed else (None, 0.0, 0)
        # A driver alone attributes the payment: the trip is assigned, driven and completed
        # (distance 0 when the file gives no route), so the driver's features see it.
        driver = row.driver or None
        authorized = self._event(
            PaymentAuthorized, row, at, pickup_zone=zone, distance_km=km, **common
        )
        out.append((at, Emitted(authorized, truth)))
        ids = {"trip_id": trip_id, "rider_id": row.rider}
        if routed:
            out.append((at, Emitted(self._requested(row, at, km, context, ids), None)))
        if driver:
            steps = (
                (TripAssigned, at + timedelta(minutes=2), {}),
                (TripStarted, at + timedelta(minutes=6), {}),
                (
                    TripCompleted,
                    at + timedelta(minutes=6 + max(minutes, 1.0)),
                    {"fare_cents": row.amount_cents, "distance_km": km or 0.0},
                ),
            )
            for cls, when, extra in steps:
                event = self._event(cls, row, when, driver_id=driver, **ids, **extra)
                out.append((when, Emitted(event, None)))
            done = steps[-1][1]
            # The capture checkpoint's request, as the booking publishes it at completion.
            request = self._event(
                PaymentCaptureRequested, row, done, pickup_zone=zone, distance_km=km,
                driver_id=driver, **common,
            )  # fmt: skip
            out.append((done, Emitted(request, None)))
            captured = self._event(
                PaymentCaptured,
                row,
                done,
                payment_id=payment_id,
                trip_id=trip_id,
                rider_id=row.rider,
                card_id=row.card,
                amount_cents=row.amount_cents,
                currency=row.currency,
            )
            out.append((done, Emitted(captured, None)))
        if row.label:
            delay = chargeback_delay(self.rng, self.labels, is_fraud=True)
            if delay is not None:
                when = at + delay
                chargeback = self._event(
                    ChargebackFiled,
                    row,
                    when,
                    chargeback_id=self._id(row, "chargeback"),
                    payment_id=payment_id,
                    card_id=row.card,
                    rider_id=row.rider,
                    amount_cents=row.amount_cents,
                    reason_code=REASON_FRAUD,
                    trip_id=trip_id,
                    driver_id=driver,
                    pickup_zone=row.pickup.zone if row.pickup else None,
                )
                out.append((when, Emitted(chargeback, truth)))
        return out


def replay_publish(
    rows: Iterator[tuple[int, dict]],
    *,
    city: City,
    bus: Bus,
    stats: Stats,
    row_events: RowEvents,
    speedup: float,
    topic_prefix: str = "",
    on_truth: Callable[[list[dict]], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    on_progress: Callable[[int], None] | None = None,
    batch_size: int = 500,
) -> Stats:
    """Publish the events of ``rows`` paced by their timestamps divided by ``speedup``."""
    if speedup < 0:
        raise ValueError("the speedup must be >= 0 (0: as fast as possible)")
    producer = bus.producer()
    waiting: list[tuple[datetime, int, Emitted]] = []
    order = itertools.count()
    buffer: list[Emitted] = []
    first: datetime | None = None
    start = stats.started = time.monotonic()

    def flush() -> None:
        if not buffer:
            return
        publish_batch(producer, buffer, topic_prefix=topic_prefix, stats=stats, on_truth=on_truth)
        buffer.clear()

    try:
        for n, (line, raw) in enumerate(rows, start=1):
            if should_stop():
                stats.stopped = True
                break
            try:
                row = parse_row(line, raw, city)
                planned = row_events.events(row)
            except (BadRow, ValueError) as exc:
                stats.error(f"line {line}: {exc}")
                continue
            first = first or row.at
            while waiting and waiting[0][0] <= row.at:
                buffer.append(heapq.heappop(waiting)[2])
            if speedup > 0:
                due = start + (row.at - first).total_seconds() / speedup
                if due > time.monotonic():
                    flush()
                    while (pause := due - time.monotonic()) > 0 and not should_stop():
                        time.sleep(min(pause, 0.5))
            for at, item in planned:
                if at <= row.at:
                    buffer.append(item)
                else:
                    heapq.heappush(waiting, (at, next(order), item))
            if len(buffer) >= batch_size:
                flush()
            if on_progress is not None:
                on_progress(n)
        while waiting and not stats.stopped:
            buffer.append(heapq.heappop(waiting)[2])
            if len(buffer) >= batch_size:
                flush()
        flush()
    finally:
        producer.close()
        stats.finish()
    return stats
