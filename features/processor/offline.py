"""The stream processor's offline history: Parquet files of feature rows (one per view) and of
accepted events (one per topic), written a flush at a time for the batches since the last."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from events.bus import Message
from features.definitions import View
from features.store import FeatureConfig
from features.tables import EVENT_SCHEMA, view_table


def parquet_append(directory: Path, table: pa.Table, *, stamp: int, seq: int) -> Path:
    """Write ``table`` as a new file of ``directory``, named ``<stamp µs>-<pid>-<seq>.parquet``
    (files sort by time and never collide between processes); write it under a hidden
    temporary name first and rename it, so readers never see a partial file."""
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{stamp:016d}-{os.getpid()}-{seq:06d}.parquet"
    tmp = directory / f".{name}.tmp"
    pq.write_table(table, tmp)
    os.replace(tmp, directory / name)
    return directory / name


@dataclass
class Unwritten:
    """Batches processed whose offline files are not written yet: their output rows by view,
    their accepted events, the messages whose offsets commit once written, the state clock of
    the latest, and since when (``time.monotonic()``) they wait."""

    outputs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    accepted: list[tuple[Message, Any, int]] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    batches: int = 0
    stamp: int = 0
    since: float | None = None


def offline_append(
    config: FeatureConfig,
    views: Mapping[str, View],
    outputs: Mapping[str, list[dict[str, Any]]],
    accepted: Sequence[tuple[Message, Any, int]],
    *,
    stamp: int,
    seq: int,
) -> int:
    """Append the output rows (one file per view of ``views``) and the accepted events (one
    file per topic, under its declared name) to the offline store of ``config``; number the
    files from ``seq`` on and return the last number used."""
    for view_name, records in outputs.items():
        seq += 1
        parquet_append(
            config.view_dir(view_name), view_table(views[view_name], records), stamp=stamp, seq=seq
        )
    by_topic: dict[str, dict[str, list[Any]]] = {}
    for message, event, ts in accepted:
        columns = by_topic.setdefault(event.topic, {name: [] for name in EVENT_SCHEMA.names})
        columns["event_id"].append(str(event.event_id))
        columns["occurred_at"].append(ts)
        columns["key"].append(message.key)
        columns["payload"].append(message.value.decode())
    for topic, columns in by_topic.items():
        seq += 1
        parquet_append(
            config.events_dir(topic), pa.table(columns, schema=EVENT_SCHEMA), stamp=stamp, seq=seq
        )
    return seq
