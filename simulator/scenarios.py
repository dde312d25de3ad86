"""Fraud scenarios, one process each; every event and payment they make is fraud in the truth.

- ``stolen_card_burst``: a rider's card number, stolen, is added by 2-4 fresh accounts on their
  own devices and paid with 8-15 times within 5-20 minutes (the same fingerprint on every card
  row); the issuer starts declining near the end.
- ``card_testing``: one fresh account adds 10-30 cards, each tried at once with a near-minimum
  fare; 85% are declined, the approved ones are cancelled before a driver comes.
- ``account_takeover``: a rider's account logs in from a new device far from the rider's usual
  places, then books 2-5 long (costly) trips on the rider's card.
- ``collusion``: a driver and a fresh account repeat 5-12 trips of a few hundred metres between
  them, every one paid with a stolen card.
- ``promo_abuse``: 3-6 accounts signed up one after the other on one device, each booking 2-4
  trips and cancelling most of them (free, or late for the fee).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

from simulator.city import distance_km
from simulator.engine import Cancel, Process, Simulation, Truth
from simulator.world import Rider, new_card, new_device

DECLINES = ("card_declined", "insufficient_funds")


def _fraud_ip(sim: Simulation) -> str:
    rng = sim.rng
    if sim.ring_active(sim.now):
        return f"192.0.2.{rng.randrange(1, 255)}"
    if rng.random() < 0.5:  # residential proxies look like anyone else
        return f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    return f"{rng.choice(('203.0.113', '198.51.100'))}.{rng.randrange(1, 255)}"


def _fraud_account(sim: Simulation, truth: Truth, *, device: str | None = None) -> Rider:
    """Sign up a fresh account (not one of the legitimate riders) now and return it."""
    rng = sim.rng
    rider = sim.world.new_rider(rng, weekly_trips=0.0)
    rider.cards = []
    rider.devices = [device or new_device(rng)]
    rider.ip = _fraud_ip(sim)
    sim.sign_up(rider, at=sim.place(rider.home_zone), truth=truth)
    return rider


def _victim(sim: Simulation) -> Rider:
    return sim.world.pick_rider(sim.rng)


def stolen_card_burst(sim: Simulation, truth: Truth) -> Process:
    rng, world = sim.rng, sim.world
    stolen = _victim(sim).cards[0]
    accounts = []
    for _ in range(rng.randint(2, 4)):
        rider = _fraud_account(sim, truth)
        card = replace(stolen, card_id=sim.new_id())
        sim.card_add(rider, card, sim.context(rider, rider.devices[0], truth=truth), truth)
        accounts.append(rider)
        yield timedelta(seconds=rng.uniform(10, 60))
    payments = rng.randint(8, 15)
    window = timedelta(minutes=rng.uniform(5, 20))
    blocked_from = round(payments * rng.uniform(0.7, 1.0))
    for n in range(payments):
        rider = accounts[n % len(accounts)]
        pickup = sim.place(world.popular_zone(rng))
        dropoff = sim.place(world.popular_zone(rng))
        context = sim.context(rider, rider.devices[0], truth=truth, at=pickup)
        sim.spawn(
            sim.now,
            sim.trip(
                rider=rider,
                card=rider.cards[0],
                context=context,
                pickup=pickup,
                dropoff=dropoff,
                truth=truth,
                decline_code=rng.choice(DECLINES) if n >= blocked_from else None,
            ),
        )
        yield window / payments


def card_testing(sim: Simulation, truth: Truth) -> Process:
    rng = sim.rng
    rider = _fraud_account(sim, truth)
    yield timedelta(minutes=rng.uniform(1, 5))
    for _ in range(rng.randint(10, 30)):
        zone = sim.world.popular_zone(rng)
        pickup, dropoff = sim.place(zone), sim.place(zone)
        context = sim.context(rider, rider.devices[0], truth=truth, at=pickup)
        card = new_card(rng, year=sim.now.year)
        sim.card_add(rider, card, context, truth)
        declined = rng.random() < 0.85
        sim.spawn(
            sim.now,
            sim.trip(
                rider=rider,
                card=card,
                context=context,
                pickup=pickup,
                dropoff=pickup if declined else dropoff,
                truth=truth,
                decline_code=rng.choice(DECLINES) if declined else None,
                cancel=Cancel("rider", "requested", timedelta(seconds=rng.uniform(5, 40))),
            ),
        )
        yield timedelta(seconds=rng.uniform(15, 90))


def account_takeover(sim: Simulation, truth: Truth) -> Process:
    rng, city = sim.rng, sim.city
    victim = _victim(sim)
    home = city.by_id[victim.home_zone].centre
    # The attacker is at the far end of the city from the rider's home; the trips cross it.
    where = max(city.zones, key=lambda z: distance_km(home, z.centre)).id
    device, ip = new_device(rng), _fraud_ip(sim)
    context = sim.context(victim, device, ip=ip, at=sim.place(where), truth=truth)
    sim.login(victim, context, truth)
    yield timedelta(minutes=rng.uniform(2, 30))
    for _ in range(rng.randint(2, 5)):
        pickup = sim.place(where)
        there = city.by_id[where].centre
        dropoff_zone = max(city.zones, key=lambda z: distance_km(there, z.centre)).id
        context = sim.context(victim, device, ip=ip, at=pickup, truth=truth)
        yield from sim.trip(
            rider=victim,
            card=victim.cards[0],
            context=context,
            pickup=pickup,
            dropoff=sim.place(dropoff_zone),
            truth=truth,
        )
        yield timedelta(minutes=rng.uniform(5, 60))
        where = dropoff_zone


def collusion(sim: Simulation, truth: Truth) -> Process:
    rng = sim.rng
    driver = rng.choice(sim.world.drivers)
    rider = _fraud_account(sim, truth)
    sim.card_add(
        rider,
        new_card(rng, year=sim.now.year),
        sim.context(rider, rider.devices[0], truth=truth),
        truth,
    )
    zone = sim.city.by_id[driver.zone]
    for _ in range(rng.randint(5, 12)):
        yield timedelta(minutes=rng.uniform(15, 60))
        pickup = sim.place(zone.id)
        lat = min(max(pickup.lat + rng.uniform(-0.003, 0.003), zone.south), zone.north)
        lng = min(max(pickup.lng + rng.uniform(-0.004, 0.004), zone.west), zone.east)
        dropoff = type(pickup)(lat=round(lat, 6), lng=round(lng, 6), zone=zone.id)
        context = sim.context(rider, rider.devices[0], truth=truth, at=pickup)
        yield from sim.trip(
            rider=rider,
            card=rider.cards[0],
            context=context,
            pickup=pickup,
            dropoff=dropoff,
            truth=truth,
            driver=driver,
        )


def promo_abuse(sim: Simulation, truth: Truth) -> Process:
    rng = sim.rng
    farm = new_device(rng)
    for _ in range(rng.randint(3, 6)):
        rider = _fraud_account(sim, truth, device=farm)
        context = sim.context(rider, farm, truth=truth)
        sim.card_add(rider, new_card(rng, year=sim.now.year), context, truth)
        for _ in range(rng.randint(2, 4)):
            yield timedelta(minutes=rng.uniform(2, 15))
            roll = rng.random()
            if roll < 0.3:
                cancel = Cancel("rider", "requested", timedelta(minutes=rng.uniform(0.2, 1)))
            elif roll < 0.8:
                cancel = Cancel("rider", "driver_assigned", timedelta(minutes=rng.uniform(2.5, 6)))
            else:
                cancel = None
            pickup = sim.place(rider.home_zone)
            yield from sim.trip(
                rider=rider,
                card=rider.cards[0],
                context=sim.context(rider, farm, truth=truth, at=pickup),
                pickup=pickup,
                dropoff=sim.place(sim.world.popular_zone(rng)),
                truth=truth,
                cancel=cancel,
            )


PROCESSES: dict[str, Callable[[Simulation, Truth], Process]] = {
    "stolen_card_burst": stolen_card_burst,
    "card_testing": card_testing,
    "account_takeover": account_takeover,
    "collusion": collusion,
    "promo_abuse": promo_abuse,
}
