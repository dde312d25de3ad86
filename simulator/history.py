"""History mode: simulated days written as fast as possible to Parquet, ground truth beside.

Layout of ``<out>``:

- ``events/<topic>.parquet``, one file per topic (every declared topic, empty ones too), columns
  ``event_id`` (string), ``occurred_at`` (timestamp, microseconds, UTC), ``key`` (string, the
  partition key) and ``payload`` (string: the event's JSON, byte for byte what the bus would
  carry; ``events.contracts.decode(topic, payload.encode())`` reads it back);
- ``ground_truth.parquet``: one row per payment, chargeback and fraud-scenario event
  (``engine.truth_row``): ``event_id``, ``topic``, ``occurred_at``, ``payment_id``,
  ``trip_id``, ``card_id``, ``rider_id``, ``is_fraud``, ``scenario``, ``incident_id``;
- ``summary.json``: the run's counters and the row count of every file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from events.contracts import TOPICS
from simulator.engine import Emitted, truth_row
from simulator.report import Stats

EVENT_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("occurred_at", pa.timestamp("us", tz="UTC")),
        ("key", pa.string()),
        ("payload", pa.string()),
    ]
)
TRUTH_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("topic", pa.string()),
        ("occurred_at", pa.timestamp("us", tz="UTC")),
        ("payment_id", pa.string()),
        ("trip_id", pa.string()),
        ("card_id", pa.string()),
        ("rider_id", pa.string()),
        ("is_fraud", pa.bool_()),
        ("scenario", pa.string()),
        ("incident_id", pa.string()),
    ]
)
FLUSH_ROWS = 50_000


class _Writer:
    """Rows buffered by column and written one row group at a time."""

    def __init__(self, path: Path, schema: pa.Schema):
        self.schema = schema
        self.writer = pq.ParquetWriter(path, schema, compression="zstd")
        self.columns: dict[str, list] = {name: [] for name in schema.names}
        self.rows = 0

    def add(self, row: dict) -> None:
        for name, values in self.columns.items():
            values.append(row[name])
        self.rows += 1
        if len(self.columns["event_id"]) >= FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.columns["event_id"]:
            self.writer.write_table(pa.table(self.columns, schema=self.schema))
            self.columns = {name: [] for name in self.schema.names}

    def close(self) -> None:
        self.flush()
        self.writer.close()


def history_write(
    emitted: Iterable[Emitted],
    *,
    out: Path,
    stats: Stats,
    on_progress: Callable[[datetime], None] | None = None,
) -> dict:
    """Write ``emitted`` under ``out`` (layout in the module docstring); return the summary.

    Overwrite the files of a previous run in the same directory.
    """
    events_dir = out / "events"
    events_dir.mkdir(parents=True, exist_ok=True)
    writers = {topic: _Writer(events_dir / f"{topic}.parquet", EVENT_SCHEMA) for topic in TOPICS}
    truth = _Writer(out / "ground_truth.parquet", TRUTH_SCHEMA)
    try:
        for n, item in enumerate(emitted):
            event = item.event
            writers[event.topic].add(
                {
                    "event_id": str(event.event_id),
                    "occurred_at": event.occurred_at,
                    "key": event.key(),
                    "payload": event.model_dump_json(),
                }
            )
            if item.truth is not None:
                truth.add(truth_row(item))
            stats.record(item)
            if on_progress is not None and n % 1000 == 0:
                on_progress(event.occurred_at)
    finally:
        for writer in writers.values():
            writer.close()
        truth.close()
    stats.finish()
    summary = {
        **stats.to_json(),
        "files": {
            **{f"events/{topic}.parquet": w.rows for topic, w in writers.items()},
            "ground_truth.parquet": truth.rows,
        },
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary
