"""Legitimate behaviour: riders' trips by habit, occasional cancellations, declines, logins,
new devices and cards, refunds, and new riders signing up (cold start)."""

from __future__ import annotations

from datetime import timedelta

from events.contracts import PaymentRefunded, Place, RiderLoggedIn
from simulator.city import distance_km
from simulator.engine import LEGIT, Cancel, Process, Simulation
from simulator.world import Rider, new_card, new_device

LOGIN_CHANCE = 0.08  # the app opened on a fresh session before booking
NEW_DEVICE_CHANCE = 0.012
NEW_CARD_CHANCE = 0.003
DECLINE_CHANCE = 0.02
REFUND_CHANCE = 0.004


def _route(sim: Simulation, rider: Rider) -> tuple[Place, Place]:
    """Return pickup and dropoff by habit: commutes at peak hours, else trips of usual length."""
    rng, world, hour = sim.rng, sim.world, sim.now.hour
    weekday = sim.now.weekday() < 5
    roll = rng.random()
    if weekday and 6 <= hour <= 10 and roll < 0.6:
        return sim.place(rider.home_zone), sim.place(rider.work_zone)
    if weekday and 16 <= hour <= 20 and roll < 0.6:
        return sim.place(rider.work_zone), sim.place(rider.home_zone)
    start = rider.home_zone if roll < 0.35 else world.popular_zone(rng)
    pickup = sim.place(start)
    wanted = rider.typical_km * rng.lognormvariate(0, 0.3)
    candidates = [world.popular_zone(rng) for _ in range(3)]
    if roll > 0.7:
        candidates.append(rider.home_zone)
    centre = {z: sim.city.by_id[z].centre for z in candidates}
    here = (pickup.lat, pickup.lng)
    dropoff_zone = min(candidates, key=lambda z: abs(distance_km(here, centre[z]) - wanted))
    return pickup, sim.place(dropoff_zone)


def _cancel(sim: Simulation) -> Cancel | None:
    roll, rng = sim.rng.random(), sim.rng
    if roll < 0.04:
        return Cancel("rider", "requested", timedelta(minutes=rng.uniform(0.3, 3)))
    if roll < 0.07:
        return Cancel("rider", "driver_assigned", timedelta(minutes=rng.uniform(0.3, 5)))
    if roll < 0.09:
        return Cancel("driver", "driver_assigned", timedelta(minutes=rng.uniform(1, 4)))
    return None


def legit_trip(sim: Simulation, rider: Rider) -> Process:
    """One booking by ``rider``: maybe a login, a new device or card, then the trip."""
    rng = sim.rng
    device = rider.devices[0] if rng.random() < 0.85 else rng.choice(rider.devices)
    if rng.random() < NEW_DEVICE_CHANCE:
        device = new_device(rng)
        rider.devices.insert(0, device)
    pickup, dropoff = _route(sim, rider)
    context = sim.context(rider, device, at=pickup)
    if rng.random() < LOGIN_CHANCE:
        sim.emit(RiderLoggedIn, rider_id=rider.rider_id, context=context)
    if rng.random() < NEW_CARD_CHANCE:
        sim.card_add(rider, new_card(rng, year=sim.now.year), context, None)
    card = rider.cards[-1] if rng.random() < 0.8 else rng.choice(rider.cards)
    declined = None
    if rng.random() < DECLINE_CHANCE:
        declined = rng.choice(("insufficient_funds", "insufficient_funds", "card_declined"))
    payment = yield from sim.trip(
        rider=rider,
        card=card,
        context=context,
        pickup=pickup,
        dropoff=dropoff,
        cancel=_cancel(sim),
        decline_code=declined,
    )
    if payment is None and len(rider.cards) > 1:
        # Declined: the rider tries another card a minute later.
        yield timedelta(minutes=rng.uniform(0.5, 2))
        other = next(c for c in rider.cards if c is not card)
        payment = yield from sim.trip(
            rider=rider, card=other, context=context, pickup=pickup, dropoff=dropoff
        )
    if payment is not None and rng.random() < REFUND_CHANCE:
        yield timedelta(hours=rng.uniform(1, 48))
        sim.emit(
            PaymentRefunded,
            LEGIT,
            payment_id=payment.payment_id,
            trip_id=payment.trip_id,
            rider_id=payment.rider_id,
            card_id=payment.card_id,
            amount_cents=max(payment.amount_cents // 2, 1),
            currency=sim.config.currency,
            reason="service_complaint",
        )


def sign_up(sim: Simulation) -> Process:
    """A new rider: sign up (``RiderSignedUp``, then a first login), add cards, join the riders,
    book a first trip."""
    rng = sim.rng
    rider = sim.world.new_rider(rng, weekly_trips=sim.config.trips_per_rider_per_week)
    cards, rider.cards = rider.cards, []
    context = sim.sign_up(rider, at=sim.place(rider.home_zone), truth=None)
    yield timedelta(minutes=rng.uniform(1, 10))
    for card in cards:
        sim.card_add(rider, card, context, None)
    sim.world.add_rider(rider)
    yield timedelta(minutes=rng.uniform(5, 120))
    yield from legit_trip(sim, rider)
