"""Write events as the stream processor archives them, for tests of the log-based datasets."""

from __future__ import annotations

import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from events.contracts import Event
from features.tables import EVENT_SCHEMA


def archive_events(directory: Path, events: list[Event]) -> None:
    """Write ``events`` under ``directory`` (a store's ``offline/events``): one Parquet file per
    topic, in the archive's schema."""
    by_topic: dict[str, list[Event]] = {}
    for event in events:
        by_topic.setdefault(event.topic, []).append(event)
    for topic, items in by_topic.items():
        target = directory / topic
        target.mkdir(parents=True, exist_ok=True)
        table = pa.table(
            {
                "event_id": [str(e.event_id) for e in items],
                "occurred_at": [e.occurred_at for e in items],
                "key": [e.key() for e in items],
                "payload": [e.model_dump_json() for e in items],
            },
            schema=EVENT_SCHEMA,
        )
        pq.write_table(table, target / f"{uuid.uuid4().hex}.parquet")
