"""A few simulated days for the ml tests: small enough to train in seconds, labels fast enough
(median chargeback delay of a few hours) that most fraud is labelled within the history."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

from simulator.city import city_from_file
from simulator.config import LabelConfig, SimConfig
from simulator.engine import Simulation
from simulator.history import history_write
from simulator.report import Stats

CONFIG = SimConfig(
    seed=11,
    riders=500,
    drivers=40,
    labels=LabelConfig(delay_median_days=0.25, false_rate=0.01),
)
DAYS = 6
MATURITY = timedelta(days=1)


def simulated_history(out: Path, *, keep_truth: bool = False) -> Path:
    """Write ``DAYS`` simulated days under ``out`` (the simulator's history layout); return it.

    Move the ground truth out of the history (to ``out.parent / "ground_truth.parquet"``)
    unless ``keep_truth``: the app must label from chargebacks alone, and this proves it reads
    nothing else."""
    simulation = Simulation(CONFIG, city_from_file())
    until = CONFIG.start + timedelta(days=DAYS)
    history_write(simulation.events(until=until), out=out, stats=Stats(mode="history"))
    if not keep_truth:
        shutil.move(out / "ground_truth.parquet", out.parent / "ground_truth.parquet")
    return out
