"""The Arrow schemas of the offline store: archived events and feature rows.

Both engines write feature rows through ``view_table``, so a row written by the stream processor
and one written by a DuckDB backfill have the same columns and types.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

from features.definitions import View

# The archived events: the same columns as the simulator's history files.
EVENT_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("occurred_at", pa.timestamp("us", tz="UTC")),
        ("key", pa.string()),
        ("payload", pa.string()),
    ]
)
EVENT_TIMESTAMP = "event_timestamp"
CREATED_TIMESTAMP = "created_timestamp"
_ARROW = {"int64": pa.int64(), "float64": pa.float64()}


def view_schema(view: View) -> pa.Schema:
    """Return the columns of ``view``'s rows: join keys, event and created timestamps, features."""
    return pa.schema(
        [(key, pa.string()) for key in view.join_keys]
        + [
            (EVENT_TIMESTAMP, pa.timestamp("us", tz="UTC")),
            (CREATED_TIMESTAMP, pa.timestamp("us", tz="UTC")),
        ]
        + [(f.name, _ARROW[f.dtype]) for f in view.features]
    )


def view_table(view: View, records: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Return ``records`` (dicts with every column of ``view_schema``; timestamps as µs since
    the epoch or aware datetimes) as an Arrow table of that schema."""
    schema = view_schema(view)
    columns: dict[str, list] = {name: [] for name in schema.names}
    for record in records:
        for name, column in columns.items():
            column.append(record[name])
    return pa.table(
        {name: pa.array(values, type=schema.field(name).type) for name, values in columns.items()},
        schema=schema,
    )
