"""One simulated day of events for the feature tests: a small world whose chargebacks arrive
within the day, so every stream view (fraud views included) gets rows."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq

from features.offline import history_files
from features.windows import Row, extract
from simulator.city import city_from_file
from simulator.config import LabelConfig, SimConfig
from simulator.engine import Simulation
from simulator.history import history_write
from simulator.report import Stats

CONFIG = SimConfig(
    seed=7,
    riders=250,
    drivers=40,
    labels=LabelConfig(delay_median_days=0.05, false_rate=0.05),
)
DAY = timedelta(days=1)


def simulated_day(out: Path) -> Path:
    """Write one simulated day under ``out`` (the simulator's history layout); return ``out``."""
    simulation = Simulation(CONFIG, city_from_file())
    history_write(simulation.events(until=CONFIG.start + DAY), out=out, stats=Stats(mode="history"))
    return out


def reference_rows(history: Path) -> dict[tuple[str, tuple[str, ...]], list[Row]]:
    """Return (view, key) -> rows of every event under ``history``, extracted in Python."""
    rows: dict[tuple[str, tuple[str, ...]], list[Row]] = defaultdict(list)
    for topic, paths in history_files(history).items():
        for path in paths:
            table = pq.read_table(path)
            for event_id, ts, payload in zip(
                table.column("event_id").to_pylist(),
                table.column("occurred_at").cast("int64").to_pylist(),
                table.column("payload").to_pylist(),
                strict=True,
            ):
                for row in extract(topic, json.loads(payload), event_id=event_id, ts=ts):
                    rows[(row.view, row.key)].append(row)
    return rows
