"""The synthetic population: riders with habits and cards, drivers with shifts, zone demand.

Everything here is drawn from one ``random.Random`` seeded by the caller, in a fixed order, so
a seed always builds the same world. No wall clock, no global random state.
"""

from __future__ import annotations

import bisect
import itertools
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from simulator.city import City

# Relative trip demand by hour of day (0-23): commute peaks on weekdays, nights at weekends.
WEEKDAY_HOURS = (
    0.20, 0.12, 0.08, 0.06, 0.08, 0.20, 0.50, 1.10, 1.40, 0.90, 0.70, 0.75,
    0.85, 0.80, 0.75, 0.85, 1.10, 1.40, 1.20, 0.90, 0.75, 0.65, 0.55, 0.40,
)  # fmt: skip
WEEKEND_HOURS = (
    0.75, 0.65, 0.50, 0.30, 0.12, 0.10, 0.15, 0.25, 0.45, 0.60, 0.75, 0.85,
    0.90, 0.90, 0.90, 0.90, 0.95, 1.00, 1.00, 1.00, 1.00, 1.05, 1.10, 0.95,
)  # fmt: skip
# Friday evening goes out like a weekend; Monday to Sunday.
WEEKDAY_FACTOR = (0.95, 0.95, 1.0, 1.05, 1.15, 1.1, 0.85)
# The riders a world starts with signed up between a day and this long before the run.
MAX_ACCOUNT_AGE = timedelta(days=3 * 365)


def _mean_profile() -> float:
    total = 0.0
    for weekday in range(7):
        for hour in range(24):
            total += _raw_demand(hour, weekday)
    return total / (7 * 24)


def _raw_demand(hour: int, weekday: int) -> float:
    weekend_night = (weekday == 4 and hour >= 20) or weekday in (5, 6)
    profile = WEEKEND_HOURS if weekend_night else WEEKDAY_HOURS
    return profile[hour] * WEEKDAY_FACTOR[weekday]


_MEAN = _mean_profile()


def demand(hour: int, weekday: int) -> float:
    """Return the city's trip demand at ``hour`` on ``weekday`` (0 = Monday); weekly mean 1."""
    return _raw_demand(hour, weekday) / _MEAN


BRANDS = (("visa", "4", 0.55), ("mastercard", "5", 0.35), ("amex", "3", 0.10))


@dataclass
class Card:
    card_id: str
    fingerprint: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int


@dataclass
class Rider:
    rider_id: str
    home_zone: str
    work_zone: str
    weekly_trips: float
    typical_km: float
    devices: list[str]
    ip: str
    cards: list[Card] = field(default_factory=list)
    # The device of the rider's latest action, as the app keeps it: another one is a change.
    last_device: str | None = None
    # None until the rider signs up: riders drawn during a run sign up when they first act.
    signed_up_at: datetime | None = None


@dataclass
class Driver:
    driver_id: str
    zone: str
    shift_start: int
    shift_hours: int
    days_off: tuple[int, ...]
    busy_until: datetime | None = None

    def on_shift(self, hour: int, weekday: int) -> bool:
        # A shift may run past midnight: it then belongs to the day it started.
        for back in range(self.shift_hours):
            start_hour = hour - back
            day = (weekday - 1) % 7 if start_hour < 0 else weekday
            if start_hour % 24 == self.shift_start and day not in self.days_off:
                return True
        return False


def new_id(rng: random.Random) -> str:
    """Return a random UUID (as the app's ``public_id``) drawn from ``rng``."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def new_device(rng: random.Random, prefix: str = "dev") -> str:
    return f"{prefix}-{rng.getrandbits(64):016x}"


def new_card(rng: random.Random, *, year: int) -> Card:
    brand, _, _ = rng.choices(BRANDS, weights=[b[2] for b in BRANDS])[0]
    return Card(
        card_id=new_id(rng),
        fingerprint=f"{rng.getrandbits(256):064x}",
        brand=brand,
        last4=f"{rng.randrange(10000):04d}",
        exp_month=rng.randint(1, 12),
        exp_year=year + rng.randint(1, 5),
    )


class World:
    """Riders, drivers and where trips start and end."""

    def __init__(self, city: City, rng: random.Random, *, year: int):
        self.city = city
        self.rng = rng
        self.year = year
        zones = [z.id for z in city.zones]
        # Central zones draw work and nightlife, outer zones are where people live.
        self.popularity = {
            z: (0.4 + city.centrality(z)) * rng.lognormvariate(0, 0.35) for z in zones
        }
        self.residential = {
            z: (1.3 - city.centrality(z)) * rng.lognormvariate(0, 0.35) for z in zones
        }
        self.zones = zones
        self._pop_cum = list(itertools.accumulate(self.popularity[z] for z in zones))
        self._res_cum = list(itertools.accumulate(self.residential[z] for z in zones))
        self.riders: list[Rider] = []
        self._rider_cum: list[float] = []
        self.drivers: list[Driver] = []
        self._shift_cache: dict[tuple[int, int], list[Driver]] = {}

    def popular_zone(self, rng: random.Random) -> str:
        return rng.choices(self.zones, cum_weights=self._pop_cum)[0]

    def residential_zone(self, rng: random.Random) -> str:
        return rng.choices(self.zones, cum_weights=self._res_cum)[0]

    def new_rider(self, rng: random.Random, *, weekly_trips: float) -> Rider:
        """Draw a rider (not yet in the pool: ``add_rider`` puts it there)."""
        devices = [new_device(rng)]
        if rng.random() < 0.15:
            devices.append(new_device(rng))
        rider = Rider(
            rider_id=new_id(rng),
            home_zone=self.residential_zone(rng),
            work_zone=self.popular_zone(rng),
            weekly_trips=rng.lognormvariate(0, 0.7) * weekly_trips,
            typical_km=min(max(rng.lognormvariate(1.3, 0.45), 1.0), 15.0),
            devices=devices,
            ip=f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
            last_device=devices[0],
        )
        rider.cards.append(new_card(rng, year=self.year))
        if rng.random() < 0.3:
            rider.cards.append(new_card(rng, year=self.year))
        return rider

    def add_rider(self, rider: Rider) -> None:
        self.riders.append(rider)
        last = self._rider_cum[-1] if self._rider_cum else 0.0
        self._rider_cum.append(last + rider.weekly_trips)

    @property
    def weekly_trips(self) -> float:
        return self._rider_cum[-1] if self._rider_cum else 0.0

    def pick_rider(self, rng: random.Random) -> Rider:
        """Return a rider, the frequent ones more often."""
        x = rng.random() * self._rider_cum[-1]
        return self.riders[min(bisect.bisect_right(self._rider_cum, x), len(self.riders) - 1)]

    def new_driver(self, rng: random.Random) -> Driver:
        days_off = tuple(sorted(rng.sample(range(7), 2)))
        return Driver(
            driver_id=new_id(rng),
            zone=self.popular_zone(rng),
            shift_start=rng.choice((6, 7, 8, 10, 14, 16, 18, 20, 22)),
            shift_hours=rng.randint(7, 10),
            days_off=days_off,
        )

    def drivers_on_shift(self, hour: int, weekday: int) -> list[Driver]:
        key = (hour, weekday)
        if key not in self._shift_cache:
            on = [d for d in self.drivers if d.on_shift(hour, weekday)]
            self._shift_cache[key] = on or self.drivers
        return self._shift_cache[key]

    def pick_driver(self, rng: random.Random, *, zone: str, now: datetime) -> Driver:
        """Return a free driver on shift, preferring one in ``zone``; a busy one when none is."""
        on_shift = self.drivers_on_shift(now.hour, now.weekday())
        free = None
        for _ in range(8):
            driver = rng.choice(on_shift)
            if driver.busy_until is None or driver.busy_until <= now:
                if driver.zone == zone:
                    return driver
                free = free or driver
        return free or rng.choice(on_shift)


def build_world(
    city: City,
    rng: random.Random,
    *,
    riders: int,
    drivers: int,
    weekly_trips: float,
    start: datetime,
) -> World:
    """Draw the world's riders and drivers from ``rng``; every rider signed up before ``start``
    (between a day and ``MAX_ACCOUNT_AGE`` earlier), so none of them publishes a sign-up."""
    world = World(city, rng, year=start.year)
    for _ in range(riders):
        world.add_rider(world.new_rider(rng, weekly_trips=weekly_trips))
    world.drivers = [world.new_driver(rng) for _ in range(drivers)]
    # Drawn after everything else, so a seed's riders and drivers are what they were before
    # riders had a sign-up time.
    oldest = MAX_ACCOUNT_AGE.total_seconds()
    for rider in world.riders:
        rider.signed_up_at = start - timedelta(seconds=rng.uniform(86_400, oldest))
    return world
