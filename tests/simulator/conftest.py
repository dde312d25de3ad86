from datetime import timedelta

import pytest

from simulator.city import City, city_from_file
from simulator.config import SCENARIOS, SimConfig
from simulator.engine import Emitted, Simulation


@pytest.fixture(scope="session")
def city() -> City:
    return city_from_file()


def only(scenario: str | None, rate: float = 0.0) -> dict[str, float]:
    """Scenario rates with every scenario off but ``scenario`` (at ``rate`` per day)."""
    rates = dict.fromkeys(SCENARIOS, 0.0)
    if scenario:
        rates[scenario] = rate
    return rates


def simulate(city: City, *, hours: float, **config) -> list[Emitted]:
    """Run a small world for ``hours`` simulated hours and return everything it emitted."""
    values = {"riders": 200, "drivers": 40, **config}
    sim_config = SimConfig(**values)
    simulation = Simulation(sim_config, city)
    return list(simulation.events(until=sim_config.start + timedelta(hours=hours)))
