"""The simulation engine: a discrete-event loop over simulated time emitting the app's events.

Behaviour is written as processes: generators that emit events at the simulated ``now`` and
yield how long to wait before their next step (a trip: pay, request, wait for a driver, ride,
capture). A heap orders the steps by (time, creation order), so events come out in time order
and a seed always gives the same sequence: every draw comes from a ``random.Random`` seeded
from ``SimConfig.seed`` (separate streams for the world, the traffic, the ids and the labels).

Ground truth travels beside each event (``Emitted.truth``), never inside it.
"""

from __future__ import annotations

import heapq
import itertools
import random
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from events.contracts import (
    CardAdded,
    ChargebackFiled,
    DeviceChanged,
    Event,
    PaymentAuthorized,
    PaymentCaptured,
    PaymentCaptureRequested,
    PaymentDeclined,
    Place,
    RiderContext,
    RiderLoggedIn,
    RiderSignedUp,
    TripAssigned,
    TripCancelled,
    TripCompleted,
    TripRequested,
    TripStarted,
)
from simulator.city import City, distance_km
from simulator.config import SCENARIOS, SimConfig
from simulator.labels import REASON_FALSE, REASON_FRAUD, chargeback_delay
from simulator.world import Card, Driver, Rider, build_world, demand, new_id

# The app's tariff (rideshare/pricing.py), restated: the simulator may not import the app.
BASE_FARE_CENTS = 250
PER_KM_CENTS = 120
PER_MINUTE_CENTS = 30
MINIMUM_FARE_CENTS = 700
AVERAGE_SPEED_KMH = 24.0
CANCELLATION_GRACE = timedelta(minutes=2)
CANCELLATION_FEE_CENTS = 500

# The topics whose events are payments (a ground-truth row each).
PAYMENT_TOPICS = (PaymentAuthorized.topic, PaymentDeclined.topic)

Process = Generator[timedelta, None, "Payment | None"]


@dataclass(frozen=True)
class Truth:
    """What really happened: kept in the simulator's own record, never put in an event."""

    is_fraud: bool
    scenario: str = ""
    incident_id: str = ""


LEGIT = Truth(is_fraud=False)


@dataclass(frozen=True)
class Emitted:
    """An event and its ground truth (None: not a payment, label or fraud event)."""

    event: Event
    truth: Truth | None


@dataclass(frozen=True)
class Payment:
    payment_id: str
    trip_id: str
    rider_id: str
    card_id: str
    amount_cents: int
    authorized_at: datetime
    truth: Truth
    pickup_zone: str
    # Known once a driver is assigned, so every captured payment has one.
    driver_id: str | None = None


@dataclass(frozen=True)
class Cancel:
    """How a trip ends early: who cancels, at which stage, how long after reaching it."""

    by: str
    stage: str
    after: timedelta


def fare(pickup: Place, dropoff: Place, *, multiplier: float = 1.0) -> tuple[float, float, int]:
    """Return (distance km, duration minutes, fare cents) as the app prices a trip."""
    km = round(distance_km((pickup.lat, pickup.lng), (dropoff.lat, dropoff.lng)), 3)
    minutes = round(km / AVERAGE_SPEED_KMH * 60, 1)
    cents = round(BASE_FARE_CENTS + PER_KM_CENTS * km + PER_MINUTE_CENTS * minutes)
    return km, minutes, round(max(cents, MINIMUM_FARE_CENTS) * multiplier)


def truth_row(emitted: Emitted) -> dict:
    """Return the ground-truth record of an emitted event (its ids, is_fraud, scenario)."""
    event, truth = emitted.event, emitted.truth or LEGIT
    return {
        "event_id": str(event.event_id),
        "topic": event.topic,
        "occurred_at": event.occurred_at,
        "payment_id": getattr(event, "payment_id", "") or "",
        "trip_id": getattr(event, "trip_id", "") or "",
        "card_id": getattr(event, "card_id", "") or "",
        "rider_id": getattr(event, "rider_id", "") or "",
        "is_fraud": truth.is_fraud,
        "scenario": truth.scenario,
        "incident_id": truth.incident_id,
    }


class Simulation:
    """A world and its clock; ``events()`` runs it and yields what happens."""

    def __init__(self, config: SimConfig, city: City):
        seed = config.seed
        self.config = config
        self.city = city
        self.rng = random.Random(f"traffic:{seed}")
        self.id_rng = random.Random(f"ids:{seed}")
        self.label_rng = random.Random(f"labels:{seed}")
        self.world = build_world(
            city,
            random.Random(f"world:{seed}"),
            riders=config.riders,
            drivers=config.drivers,
            weekly_trips=config.trips_per_rider_per_week,
            start=config.start,
        )
        self.now = config.start
        self._heap: list[tuple[datetime, int, Process]] = []
        self._order = itertools.count()
        self._incidents = itertools.count(1)
        self._out: list[Emitted] = []
        self.labels_scheduled = 0
        self.labels_emitted = 0

    # The clock.

    def events(self, *, until: datetime | None = None) -> Iterator[Emitted]:
        """Run the simulation from its start (forever, or until ``until``) yielding each event."""
        hour = self.config.start.replace(minute=0, second=0, microsecond=0)
        while until is None or hour < until:
            end = hour + timedelta(hours=1)
            self._schedule_hour(max(hour, self.config.start), end)
            stop = end if until is None else min(end, until)
            while self._heap and self._heap[0][0] < stop:
                at, _, process = heapq.heappop(self._heap)
                self.now = at
                wait = next(process, None)
                if wait is not None:
                    self.spawn(at + wait, process)
                if self._out:
                    out, self._out = self._out, []
                    yield from out
            hour = end

    def spawn(self, at: datetime, process: Process) -> None:
        heapq.heappush(self._heap, (at, next(self._order), process))

    def _arrivals(self, start: datetime, end: datetime, per_hour: float) -> Iterator[datetime]:
        if per_hour <= 0:
            return
        t = start
        while True:
            t += timedelta(hours=self.rng.expovariate(per_hour))
            if t >= end:
                return
            yield t

    def _schedule_hour(self, start: datetime, end: datetime) -> None:
        # Imported here: behaviour and scenarios are written against this module.
        from simulator import behaviour, scenarios

        load = demand(start.hour, start.weekday())
        trips = self.world.weekly_trips / 168 * load * self.surge(start)
        for at in self._arrivals(start, end, trips):
            self.spawn(at, behaviour.legit_trip(self, self.world.pick_rider(self.rng)))
        for at in self._arrivals(start, end, self.config.new_riders_per_day / 24 * load):
            self.spawn(at, behaviour.sign_up(self))
        for name in SCENARIOS:
            for at in self._arrivals(start, end, self.scenario_rate(name, start) / 24):
                incident = f"{name}-{next(self._incidents)}"
                truth = Truth(is_fraud=True, scenario=name, incident_id=incident)
                self.spawn(at, scenarios.PROCESSES[name](self, truth))

    # Drift.

    def _active(self, name: str, at: datetime) -> bool:
        return any(d.name == name and d.active(at) for d in self.config.drifts)

    def surge(self, at: datetime) -> float:
        return 2.5 if self._active("black_friday", at) else 1.0

    def fare_multiplier(self, at: datetime) -> float:
        return 1.2 if self._active("black_friday", at) else 1.0

    def ring_active(self, at: datetime) -> bool:
        return self._active("fraud_ring", at)

    def scenario_rate(self, name: str, at: datetime) -> float:
        """Return the scenario's incidents per simulated day at ``at``, drifts applied."""
        rate = self.config.scenarios.get(name, 0.0)
        switched_on = [d.at for d in self.config.drifts if d.name == name]
        if switched_on:
            rate = (rate or SCENARIOS[name]) if at >= min(switched_on) else 0.0
        if name == "stolen_card_burst" and self._active("black_friday", at):
            rate *= 3
        if name in ("stolen_card_burst", "collusion") and self.ring_active(at):
            rate *= 4
        return rate

    # Emitting events.

    def new_id(self) -> str:
        return new_id(self.id_rng)

    def emit(self, cls: type[Event], truth: Truth | None = None, **fields) -> Event:
        event = cls(
            event_id=uuid.UUID(int=self.id_rng.getrandbits(128), version=4),
            occurred_at=self.now,
            **fields,
        )
        self._out.append(Emitted(event, truth))
        return event

    def place(self, zone: str) -> Place:
        lat, lng = self.city.random_point(self.rng, zone)
        return Place(lat=lat, lng=lng, zone=zone)

    def context(
        self,
        rider: Rider,
        device: str,
        *,
        ip: str | None = None,
        at: Place | None = None,
        truth: Truth | None = None,
    ) -> RiderContext:
        """Return where the rider acts from; publish ``DeviceChanged`` first for a new device."""
        if device != rider.last_device:
            self.emit(
                DeviceChanged,
                truth,
                rider_id=rider.rider_id,
                previous_device_id=rider.last_device,
                context=RiderContext(device_id=device, ip=ip or rider.ip),
            )
            rider.last_device = device
        return RiderContext(
            device_id=device,
            ip=ip or rider.ip,
            lat=at.lat if at else None,
            lng=at.lng if at else None,
        )

    def login(self, rider: Rider, context: RiderContext, truth: Truth | None) -> None:
        """Publish a login."""
        self.emit(RiderLoggedIn, truth, rider_id=rider.rider_id, context=context)

    def sign_up(self, rider: Rider, *, at: Place, truth: Truth | None) -> RiderContext:
        """Sign ``rider`` up now from its first device at ``at``; return that context.

        Publish ``RiderSignedUp``, then ``DeviceChanged`` (no previous device) and
        ``RiderLoggedIn``: the app's order, a sign-up being the rider's first login.
        """
        rider.signed_up_at, rider.last_device = self.now, None
        device = rider.devices[0]
        self.emit(
            RiderSignedUp,
            truth,
            rider_id=rider.rider_id,
            context=RiderContext(device_id=device, ip=rider.ip, lat=at.lat, lng=at.lng),
        )
        context = self.context(rider, device, at=at, truth=truth)
        self.login(rider, context, truth)
        return context

    def card_add(self, rider: Rider, card: Card, context: RiderContext, truth: Truth | None):
        rider.cards.append(card)
        self.emit(
            CardAdded,
            truth,
            card_id=card.card_id,
            rider_id=rider.rider_id,
            brand=card.brand,
            last4=card.last4,
            exp_month=card.exp_month,
            exp_year=card.exp_year,
            fingerprint=card.fingerprint,
            context=context,
        )

    def capture(self, payment: Payment, amount_cents: int) -> None:
        """Publish the capture and plan its chargeback, if it gets one."""
        self.emit(
            PaymentCaptured,
            payment.truth if payment.truth.is_fraud else None,
            payment_id=payment.payment_id,
            trip_id=payment.trip_id,
            rider_id=payment.rider_id,
            card_id=payment.card_id,
            amount_cents=amount_cents,
            currency=self.config.currency,
        )
        delay = chargeback_delay(
            self.label_rng, self.config.labels, is_fraud=payment.truth.is_fraud
        )
        if delay is not None:
            self.labels_scheduled += 1
            self.spawn(max(payment.authorized_at + delay, self.now), self._chargeback(payment))

    def _chargeback(self, payment: Payment) -> Process:
        yield from ()  # a process with a single step
        self.labels_emitted += 1
        self.emit(
            ChargebackFiled,
            payment.truth,
            chargeback_id=self.new_id(),
            payment_id=payment.payment_id,
            card_id=payment.card_id,
            rider_id=payment.rider_id,
            amount_cents=payment.amount_cents,
            reason_code=REASON_FRAUD if payment.truth.is_fraud else REASON_FALSE,
            trip_id=payment.trip_id,
            driver_id=payment.driver_id,
            pickup_zone=payment.pickup_zone,
        )
        return None

    def trip(
        self,
        *,
        rider: Rider,
        card: Card,
        context: RiderContext,
        pickup: Place,
        dropoff: Place,
        truth: Truth = LEGIT,
        driver: Driver | None = None,
        cancel: Cancel | None = None,
        decline_code: str | None = None,
    ) -> Process:
        """Run one trip as the app records it; return its payment (None when declined).

        The fare is authorised first (``PaymentAuthorized`` or ``PaymentDeclined``), then the
        trip is requested, assigned, started and completed with its capture, unless ``cancel``
        ends it (a rider's late cancellation captures the fee).
        """
        trip_id, payment_id = self.new_id(), self.new_id()
        km, minutes, fare_cents = fare(pickup, dropoff, multiplier=self.fare_multiplier(self.now))
        flagged = truth if truth.is_fraud else None
        common = {
            "payment_id": payment_id,
            "trip_id": trip_id,
            "rider_id": rider.rider_id,
            "card_id": card.card_id,
            "card_fingerprint": card.fingerprint,
            "amount_cents": fare_cents,
            "currency": self.config.currency,
            "context": context,
        }
        if decline_code is not None:
            self.emit(PaymentDeclined, truth, decline_code=decline_code, **common)
            return None
        self.emit(PaymentAuthorized, truth, pickup_zone=pickup.zone, distance_km=km, **common)
        payment = Payment(
            payment_id=payment_id,
            trip_id=trip_id,
            rider_id=rider.rider_id,
            card_id=card.card_id,
            amount_cents=fare_cents,
            authorized_at=self.now,
            truth=truth,
            pickup_zone=pickup.zone,
        )
        ids = {"trip_id": trip_id, "rider_id": rider.rider_id}
        self.emit(
            TripRequested,
            flagged,
            card_id=card.card_id,
            pickup=pickup,
            dropoff=dropoff,
            distance_km=km,
            fare_cents=fare_cents,
            currency=self.config.currency,
            context=context,
            **ids,
        )
        if cancel is not None and cancel.stage == "requested":
            yield cancel.after
            self.emit(
                TripCancelled, flagged, cancelled_by="rider", fee_cents=0, stage="requested", **ids
            )
            return payment
        yield timedelta(minutes=self.rng.uniform(0.3, 6))
        driver = driver or self.world.pick_driver(self.rng, zone=pickup.zone, now=self.now)
        eta = timedelta(minutes=self.rng.uniform(2, 8))
        driver.busy_until = self.now + eta + timedelta(minutes=minutes)
        payment = replace(payment, driver_id=driver.driver_id)
        self.emit(TripAssigned, flagged, driver_id=driver.driver_id, **ids)
        if cancel is not None:
            yield cancel.after
            late = cancel.by == "rider" and cancel.after > CANCELLATION_GRACE
            fee = min(CANCELLATION_FEE_CENTS, fare_cents) if late else 0
            driver.busy_until = self.now
            self.emit(
                TripCancelled,
                flagged,
                driver_id=driver.driver_id,
                cancelled_by=cancel.by,
                fee_cents=fee,
                stage="driver_assigned",
                **ids,
            )
            if fee:
                self.capture(payment, fee)
            return payment
        yield eta
        self.emit(TripStarted, flagged, driver_id=driver.driver_id, **ids)
        yield timedelta(minutes=max(minutes, 1.0))
        driver.zone = dropoff.zone
        self.emit(
            TripCompleted,
            flagged,
            driver_id=driver.driver_id,
            fare_cents=fare_cents,
            distance_km=km,
            **ids,
        )
        # The booking asks the capture checkpoint for its verdict first; the simulated world
        # captures whatever it says (the simulator never reads verdicts).
        self.emit(
            PaymentCaptureRequested,
            flagged,
            **{**common, "amount_cents": fare_cents},
            pickup_zone=pickup.zone,
            distance_km=km,
            driver_id=driver.driver_id,
        )
        self.capture(payment, fare_cents)
        return payment
