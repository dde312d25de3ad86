"""What a simulation is asked to do: world size, fraud scenario rates, drifts and labels.

Plain dataclasses parsed from CLI strings, so the same configuration drives every mode (and a
Celery task, from a ``SimulationRun``'s JSON parameters).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta

# Incidents per simulated day at the default configuration.
SCENARIOS: dict[str, float] = {
    "stolen_card_burst": 2.0,
    "card_testing": 1.0,
    "account_takeover": 2.0,
    "collusion": 0.5,
    "promo_abuse": 1.0,
}

SCENARIO_HELP = {
    "stolen_card_burst": "a stolen card's number used by several accounts and devices in minutes",
    "card_testing": "one account adding many cards, each tried with a small, mostly declined hold",
    "account_takeover": "a rider's account used from a new device and place, then costly trips",
    "collusion": "a driver and a rider repeating short fake trips between them",
    "promo_abuse": "new accounts farmed on one device, booking and cancelling for promos and fees",
}

# name -> (what it changes, how long it lasts; None = for the rest of the run)
DRIFTS: dict[str, tuple[str, timedelta | None]] = {
    "black_friday": ("demand x2.5, fares x1.2, stolen-card bursts x3", timedelta(hours=24)),
    "fraud_ring": ("a new ring: bursts and collusion x4 from new devices and addresses", None),
}

DEFAULT_START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday


@dataclass(frozen=True)
class Drift:
    """A change of the world at a simulated time: a named shift, or a scenario switched on."""

    name: str
    at: datetime

    @property
    def until(self) -> datetime | None:
        lasts = DRIFTS.get(self.name, ("", None))[1]
        return self.at + lasts if lasts is not None else None

    def active(self, now: datetime) -> bool:
        until = self.until
        return self.at <= now and (until is None or now < until)


@dataclass(frozen=True)
class LabelConfig:
    """Chargebacks: which fraudulent captures get one, after how many simulated days."""

    fraction: float = 0.8
    delay_median_days: float = 10.0
    delay_sigma: float = 0.6
    false_rate: float = 0.002

    def __post_init__(self) -> None:
        if not 0 <= self.fraction <= 1 or not 0 <= self.false_rate <= 1:
            raise ValueError("label fractions must be within 0..1")
        if self.delay_median_days <= 0 or self.delay_sigma < 0:
            raise ValueError("the label delay needs a positive median and a sigma >= 0")

    @property
    def mu(self) -> float:
        """Return the log-scale mean of the lognormal delay: the log of its median."""
        return math.log(self.delay_median_days)


@dataclass(frozen=True)
class SimConfig:
    seed: int = 1
    start: datetime = DEFAULT_START
    riders: int = 2000
    drivers: int = 200
    trips_per_rider_per_week: float = 3.0
    new_riders_per_day: float = 20.0
    scenarios: dict[str, float] = field(default_factory=lambda: dict(SCENARIOS))
    drifts: tuple[Drift, ...] = ()
    labels: LabelConfig = field(default_factory=LabelConfig)
    currency: str = "EUR"

    def __post_init__(self) -> None:
        unknown = set(self.scenarios) - set(SCENARIOS)
        if unknown:
            raise ValueError(f"unknown scenario(s) {sorted(unknown)}; known: {sorted(SCENARIOS)}")
        if self.riders < 1 or self.drivers < 1:
            raise ValueError("a world needs at least one rider and one driver")
        if self.start.tzinfo is None:
            raise ValueError("the start time must be timezone-aware")

    def to_json(self) -> dict:
        data = asdict(self)
        data["start"] = self.start.isoformat()
        data["drifts"] = [f"{d.name}@{d.at.isoformat()}" for d in self.drifts]
        return data

    @classmethod
    def from_json(cls, data: dict) -> SimConfig:
        values = dict(data)
        values["start"] = parse_time(values["start"]) if "start" in values else DEFAULT_START
        values["drifts"] = tuple(parse_drift(d) for d in values.get("drifts", ()))
        values["labels"] = LabelConfig(**values.get("labels", {}))
        return cls(**values)

    def with_scenarios(self, rates: dict[str, float]) -> SimConfig:
        return replace(self, scenarios={**self.scenarios, **rates})


def parse_time(text: str) -> datetime:
    """Parse an ISO 8601 time; a time without a zone is UTC."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


OFFSET_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_offset(text: str) -> timedelta:
    """Parse a duration such as ``90s``, ``10m``, ``2h`` or ``1.5d``."""
    text = text.strip()
    unit = OFFSET_UNITS.get(text[-1:])
    try:
        value = float(text[:-1]) if unit else float("nan")
    except ValueError:
        value = float("nan")
    if unit is None or not math.isfinite(value) or value < 0:
        raise ValueError(f"{text!r} is not a duration like 90s, 10m, 2h or 1d")
    return timedelta(seconds=value * unit)


def parse_drift(text: str, *, start: datetime | None = None, scale: float = 1.0) -> Drift:
    """Parse ``NAME@TIME``: a named drift (``black_friday``, ``fraud_ring``) or a scenario.

    ``TIME`` is a simulated time, or ``+DURATION`` after ``start`` (``card_testing@+10m``) in
    the run's event time, which is ``scale`` times slower than the simulated clock (a live
    run's speedup: ten minutes of its event time are ``10 * scale`` simulated minutes)."""
    name, sep, at = text.partition("@")
    name = name.strip()
    if not sep or not name:
        raise ValueError(f"drift {text!r}: expected NAME@TIME, e.g. black_friday@2026-11-27T00:00")
    if name not in DRIFTS and name not in SCENARIOS:
        known = sorted(DRIFTS) + sorted(SCENARIOS)
        raise ValueError(f"drift {text!r}: unknown name {name!r}; known: {', '.join(known)}")
    try:
        if at.strip().startswith("+"):
            if start is None:
                raise ValueError("a time after the start needs a start")
            when = start + parse_offset(at.strip()[1:]) * scale
        else:
            when = parse_time(at)
    except ValueError as exc:
        raise ValueError(f"drift {text!r}: {exc}") from exc
    return Drift(name=name, at=when)


def parse_scenario_rate(text: str) -> tuple[str, float]:
    """Parse ``NAME=RATE`` (incidents per simulated day; 0 switches the scenario off)."""
    name, sep, rate = text.partition("=")
    name = name.strip()
    if not sep or name not in SCENARIOS:
        raise ValueError(
            f"scenario {text!r}: expected NAME=RATE with NAME one of {list(SCENARIOS)}"
        )
    try:
        value = float(rate)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"scenario {text!r}: the rate must be a number >= 0 (incidents per day)")
    return name, value
