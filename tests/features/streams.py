"""Helpers of the stream processor tests: streams of messages as a bus would deliver them, a
brute-force reference of what the processor must compute from them, and readers of what it
wrote to the online and offline stores."""

from __future__ import annotations

import json
import shutil
import uuid
import zlib
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from events.bus import Message
from events.contracts import Event, decode, topic_name
from features.definitions import OCCURRED_AT, STREAM_VIEWS, Aggregate, Ratio, View
from features.repo import apply_repo
from features.store import FeatureConfig, feature_store
from features.tables import CREATED_TIMESTAMP, EVENT_TIMESTAMP
from features.windows import Row, extract, to_us

# (key, event time µs) -> feature values, per view name
ViewRows = dict[str, dict[tuple[tuple[str, ...], int], dict[str, Any]]]
# key -> feature values, per view name
Online = dict[str, dict[tuple[str, ...], dict[str, Any]]]

_US = timedelta(microseconds=1)


def messages_for(
    events: Iterable[Event | tuple[Event, bytes]], *, namespace: str, partitions: int = 3
) -> list[Message]:
    """Return ``events`` as the bus would deliver them in this order: on
    ``<namespace>.<topic>``, partitioned by key, offsets counted per partition. An item may be
    ``(event, value)`` to deliver other bytes (poison) under the event's topic and key."""
    offsets: dict[tuple[str, int], int] = defaultdict(int)
    out = []
    for item in events:
        event, value = item if isinstance(item, tuple) else (item, item.encode())
        topic = topic_name(namespace, event.topic)
        partition = zlib.crc32(event.key().encode()) % partitions
        offset = offsets[(topic, partition)]
        offsets[(topic, partition)] += 1
        out.append(Message(topic, partition, offset, event.key(), value))
    return out


@dataclass(frozen=True)
class Reference:
    """What the processor must compute from a stream: every (entity, event time) row, each
    entity's latest row, and the messages that are late."""

    rows: ViewRows
    online: Online
    late: list[Message]
    accepted: list[Message]


def reference(
    messages: Sequence[Message], *, lateness_us: int, views: Sequence[View] = STREAM_VIEWS
) -> Reference:
    """Compute, naively, what the processor must produce from ``messages`` (valid events)."""
    latest_on_partition: dict[tuple[str, int], int] = {}
    late, accepted = [], []
    rows: dict[tuple[str, tuple[str, ...]], dict[tuple[str, str], Row]] = defaultdict(dict)
    for message in messages:
        event = decode(message.topic, message.value)
        ts = to_us(event.occurred_at)
        slot = (message.topic, message.partition)
        if slot in latest_on_partition and ts < latest_on_partition[slot] - lateness_us:
            late.append(message)
            continue
        latest_on_partition[slot] = max(latest_on_partition.get(slot, ts), ts)
        accepted.append(message)
        payload = json.loads(message.value)
        for row in extract(
            message.topic, payload, event_id=str(event.event_id), ts=ts, views=views
        ):
            rows[(row.view, row.key)][(row.event_id, row.kind)] = row
    by_name = {v.name: v for v in views}
    out: ViewRows = defaultdict(dict)
    online: Online = defaultdict(dict)
    for (view_name, key), entity_rows in rows.items():
        view = by_name[view_name]
        instants = sorted({r.ts for r in entity_rows.values()})
        for at in instants:
            out[view_name][(key, at)] = naive_values(view, list(entity_rows.values()), at)
        online[view_name][key] = out[view_name][(key, instants[-1])]
    return Reference(rows=dict(out), online=dict(online), late=late, accepted=accepted)


def naive_values(view: View, rows: list[Row], at: int) -> dict[str, Any]:
    """Return ``view``'s values at ``at`` over one entity's ``rows``, by plain loops."""
    values: dict[str, Any] = {}
    for feature in view.features:
        if not isinstance(feature, Aggregate):
            continue
        chosen = []
        for row in rows:
            if row.kind not in feature.kinds or row.ts > at:
                continue
            if feature.window is not None and row.ts <= at - feature.window // _US:
                continue
            chosen.append(row)
        field = [
            row.ts / 1_000_000 if feature.field == OCCURRED_AT else row.fields.get(feature.field)
            for row in chosen
        ]
        if feature.agg == "count":
            values[feature.name] = len(chosen)
        elif feature.agg == "sum":
            values[feature.name] = sum(v for v in field if v is not None)
        elif feature.agg == "count_distinct":
            values[feature.name] = len({v for v in field if v is not None})
        elif feature.agg == "last":
            best = None
            for row, value in zip(chosen, field, strict=True):
                if best is None or (row.ts, row.event_id) > (best[0].ts, best[0].event_id):
                    best = (row, value)
            cast = int if feature.dtype == "int64" else float
            values[feature.name] = None if best is None or best[1] is None else cast(best[1])
        elif feature.agg == "since_previous":
            before = [row.ts for row in chosen if row.ts < at]
            values[feature.name] = (at - max(before)) / 1_000_000 if before else None
        else:
            raise AssertionError(f"the reference has no {feature.agg}")
    for feature in view.features:
        if isinstance(feature, Ratio):
            numerator, denominator = values[feature.numerator], values[feature.denominator]
            values[feature.name] = numerator / denominator if denominator else None
    return values


def offline_rows(config: FeatureConfig, views: Sequence[View] = STREAM_VIEWS) -> ViewRows:
    """Return the feature rows in ``config``'s offline files, one per (keys, event_timestamp):
    the latest created (what every reader keeps)."""
    out: ViewRows = {}
    for view in views:
        files = sorted(config.view_dir(view.name).glob("*.parquet"))
        tables = [pq.read_table(f) for f in files]
        table = pa.concat_tables(tables) if tables else None
        latest: dict[tuple[tuple[str, ...], int], tuple[int, dict[str, Any]]] = {}
        for record in table.to_pylist() if table is not None else []:
            key = tuple(record[k] for k in view.join_keys)
            at = to_us(record[EVENT_TIMESTAMP])
            created = to_us(record[CREATED_TIMESTAMP])
            if (key, at) not in latest or created > latest[(key, at)][0]:
                latest[(key, at)] = (created, {f.name: record[f.name] for f in view.features})
        if latest:
            out[view.name] = {k: v for k, (_, v) in latest.items()}
    return out


def online_values(config: FeatureConfig, wanted: Online) -> Online:
    """Return what the online store of ``config`` serves for every entity of ``wanted``."""
    store = feature_store(config)
    by_name = {v.name: v for v in STREAM_VIEWS}
    out: Online = {}
    for view_name, entities in wanted.items():
        view = by_name[view_name]
        keys = sorted(entities)
        served = store.get_online_features(
            features=[f"{view.name}:{f.name}" for f in view.features],
            entity_rows=[dict(zip(view.join_keys, key, strict=True)) for key in keys],
        ).to_dict()
        out[view_name] = {
            key: {f.name: served[f.name][i] for f in view.features} for i, key in enumerate(keys)
        }
    return out


def applied_config(tmp: Path, *, online: str = "sqlite", redis_url: str = "") -> FeatureConfig:
    """Return a config of a fresh project under ``tmp``, applied to its own SQLite registry."""
    config = FeatureConfig(
        project=f"t_{uuid.uuid4().hex[:10]}",
        registry_url=f"sqlite:///{tmp / 'registry.sqlite3'}",
        online=online,
        data_dir=tmp / "features",
        redis_url=redis_url,
    )
    apply_repo(config)
    return config


@contextmanager
def redis_project(tmp: Path, redis_url: str) -> Iterator[FeatureConfig]:
    """Yield an applied config on Redis (state and online store); delete its keys after."""
    import redis

    config = applied_config(tmp, online="redis", redis_url=redis_url)
    try:
        yield config
    finally:
        client = redis.Redis.from_url(redis_url)
        # State keys start with the project; Feast's online keys end with it.
        for pattern in (f"features:{config.project}:*", f"*{config.project}"):
            keys = list(client.scan_iter(match=pattern, count=1000))
            for i in range(0, len(keys), 1000):
                client.delete(*keys[i : i + 1000])
        client.close()


def fresh_copy(config: FeatureConfig, data_dir: Path) -> FeatureConfig:
    """Return ``config`` on an empty ``data_dir``: same project and registry, and a copy of the
    (empty) SQLite online store, so no apply is needed."""
    data_dir.mkdir(parents=True, exist_ok=True)
    copy = replace(config, data_dir=data_dir)
    if config.online == "sqlite":
        shutil.copy(config.online_path, copy.online_path)
    return copy
