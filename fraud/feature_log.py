"""Served-feature logging: every vector the scorer served, exactly as served, for log-and-wait
training sets (``ml.datasets.logged_dataset``: logged features JOIN labels, nothing recomputed).

One ``feature_log_write`` call per micro-batch writes one Parquet file through Feast's feature
logging (``FeatureStore.write_logged_features``) to the service's logging destination,
``<data_dir>/offline/logs/<service>/``, in the layout ``features.served_log`` describes and
reads back (``logged_features``); ``__request_id`` is the payment event's ``event_id``.

Replays log an event again (at-least-once input); the reader keeps the latest row per event. A
file torn by a crash mid-write (no Parquet footer) is skipped on read: its batch was not
committed, so it is replayed and logged again.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing import get_context, parent_process
from typing import Any

import orjson
import pyarrow as pa
from feast.feature_logging import (
    LOG_DATE_FIELD,
    LOG_TIMESTAMP_FIELD,
    REQUEST_ID_FIELD,
)

from events.batching import gc_settle
from features.feature_repo.services import feature_services
from features.served_log import (
    CONSISTENCY_FIELD,
    CONSISTENCY_LAG_FIELD,
    MODEL_VERSION_FIELD,
    OCCURRED_AT_FIELD,
    ON_DEMAND_PREFIX,
    PAYMENT_ID,
    REQUEST_TIME_FIELD,
    ROLE_FIELD,
    SERVICE,
    STATUS_NUMBERS,
    LogLayout,
    log_dir,
    log_layout,
)
from features.serving import ServedVector, entity_row
from features.store import FeatureConfig, feature_store
from fraud.scoring import record_names, vector_from_record

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoggedVector:
    """One scored payment's served vector, as the scorer used it.

    ``request`` is the payment payload: it gives the join keys exactly as served and the
    ``payment_id`` labels join on; without it both are logged as null.
    """

    event_id: str
    request_time: datetime
    model_version: str
    role: str
    vector: ServedVector
    request: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class LogItem:
    """A recorded score's served vector in the compact form kept on ``FraudScore.features``
    (``fraud.scoring.vector_record``), as JSON text, with the ids its log row carries. The
    scorer hands these to its feature log worker (``feature_log_items``), which decodes and
    expands them off the loop. As text, because decoded vectors pickle several times slower and
    the scorer's pickling thread holds the interpreter meanwhile (docs/performance.md)."""

    event_id: str
    model_version: str
    role: str
    features_json: str

    def entry(self) -> LoggedVector:
        """Return the feature log entry: the vector and request time as served."""
        record = json.loads(self.features_json)
        vector, request_time = vector_from_record(record)
        return LoggedVector(
            event_id=self.event_id,
            request_time=request_time,
            model_version=self.model_version,
            role=self.role,
            vector=vector,
            request=record["request"],
        )


def feature_log_items(config: FeatureConfig, items: Sequence[LogItem]) -> None:
    """Write ``items`` to the feature log, in one file, as ``feature_log_write`` writes their
    entries (``log_items_table``)."""
    if not items:
        return
    by_service: dict[str, list[LogItem]] = {}
    for item in items:
        by_service.setdefault(_service_of(item.features_json), []).append(item)
    # One service per scorer; a sweep may hold a file's worth of each checkpoint's.
    for service, mine in sorted(by_service.items()):
        _log_write(config, log_items_table(config, mine, service), service)


_SERVICE_PREFIX = '{"service":"'


def _service_of(features_json: str) -> str:
    """Return the service of a compact record: ``vector_record`` puts it first, so a prefix
    read spares parsing the whole record a second time."""
    if features_json.startswith(_SERVICE_PREFIX):
        end = features_json.index('"', len(_SERVICE_PREFIX))
        return features_json[len(_SERVICE_PREFIX) : end]
    return orjson.loads(features_json)["service"]


def log_items_table(
    config: FeatureConfig,
    items: Sequence[LogItem],
    service: str = SERVICE,
    *,
    stamp: datetime | None = None,
) -> pa.Table:
    """Return the table ``log_table`` makes of the entries of ``items``, built column by column
    from their compact records (lists in the served service's feature order, event times in
    µs), without expanding each item into an entry first (a dict per part of the vector, a
    datetime per feature), which costs more than twice the CPU (docs/performance.md). Read
    only."""
    # orjson wrote them (``ScoreDraft.features_json``); it reads them several times faster.
    records = [orjson.loads(item.features_json) for item in items]
    served = {record["service"] for record in records}
    if len(served) != 1:
        return log_table(config, [item.entry() for item in items], service, stamp=stamp)
    stored, on_demand = record_names(served.pop())
    position = {name: i for i, name in enumerate(stored)}
    layout = log_layout(config, service)
    columns: dict[str, list[Any]] = {}
    nothing = [None] * len(records)
    not_found = [STATUS_NUMBERS["NOT_FOUND"]] * len(records)
    for name, column in layout.columns.items():
        i = position.get(name)
        if i is None:
            columns[column], columns[f"{column}__timestamp"] = nothing, nothing
            columns[f"{column}__status"] = not_found
            continue
        columns[column] = [record["values"][i] for record in records]
        # µs since the epoch, the unit of the timestamp columns.
        columns[f"{column}__timestamp"] = [record["event_timestamps"][i] for record in records]
        columns[f"{column}__status"] = [record["statuses"][i] for record in records]
    at = {name: i for i, name in enumerate(on_demand)}
    for name in layout.on_demand:
        i = at.get(name)
        columns[ON_DEMAND_PREFIX + name] = (
            nothing if i is None else [record["on_demand"][i] for record in records]
        )
    columns[CONSISTENCY_FIELD] = [record.get("consistency") for record in records]
    columns[CONSISTENCY_LAG_FIELD] = [record.get("consistency_lag_ms") for record in records]
    return _assembled(
        layout,
        columns,
        stamp=stamp or _log_timestamp(),
        requests=[record["request"] for record in records],
        event_ids=[item.event_id for item in items],
        request_times=_request_times([record["request_time"] for record in records]),
        model_versions=[item.model_version for item in items],
        roles=[item.role for item in items],
    )


def _request_times(texts: Sequence[str]) -> list[datetime]:
    # A batch's vectors share their request time: each distinct text is parsed once.
    parsed: dict[str, datetime] = {}
    return [parsed.get(t) or parsed.setdefault(t, datetime.fromisoformat(t)) for t in texts]


_clock = threading.Lock()
_last_stamp = datetime.min.replace(tzinfo=UTC)


def _log_timestamp() -> datetime:
    """Return now, strictly later than any earlier call in this process: the latest of two logs
    of one event is the one written last, even within a microsecond."""
    global _last_stamp
    with _clock:
        now = datetime.now(UTC)
        if now <= _last_stamp:
            now = _last_stamp + timedelta(microseconds=1)
        _last_stamp = now
        return now


def log_table(
    config: FeatureConfig,
    entries: Sequence[LoggedVector],
    service: str = SERVICE,
    *,
    stamp: datetime | None = None,
) -> pa.Table:
    """Return ``entries`` as one Arrow table in the service's logging schema, logged at
    ``stamp`` (now, by default). Read only."""
    layout = log_layout(config, service)
    columns: dict[str, list[Any]] = {}
    for name, column in layout.columns.items():
        columns[column] = [e.vector.values.get(name) for e in entries]
        columns[f"{column}__timestamp"] = [e.vector.event_timestamps.get(name) for e in entries]
        columns[f"{column}__status"] = [
            STATUS_NUMBERS[e.vector.statuses.get(name, "NOT_FOUND")] for e in entries
        ]
    for name in layout.on_demand:
        columns[ON_DEMAND_PREFIX + name] = [e.vector.on_demand.get(name) for e in entries]
    columns[CONSISTENCY_FIELD] = [e.vector.consistency for e in entries]
    columns[CONSISTENCY_LAG_FIELD] = [e.vector.lag_ms for e in entries]
    return _assembled(
        layout,
        columns,
        stamp=stamp or _log_timestamp(),
        requests=[e.request for e in entries],
        event_ids=[str(e.event_id) for e in entries],
        request_times=[e.request_time for e in entries],
        model_versions=[e.model_version for e in entries],
        roles=[e.role for e in entries],
    )


def _assembled(
    layout: LogLayout,
    columns: dict[str, list[Any]],
    *,
    stamp: datetime,
    requests: Sequence[Mapping[str, Any] | None],
    event_ids: list[str],
    request_times: list[datetime],
    model_versions: list[str],
    roles: list[str],
) -> pa.Table:
    """Return the log table of rows given column by column: ``columns`` holds the feature and
    on-demand ones; the join keys and the payment id come from ``requests`` (null without
    one), then the log's own fields."""
    data = dict(columns)
    rows = [
        dict.fromkeys(layout.join_keys) if r is None else entity_row(r, layout.join_keys)
        for r in requests
    ]
    for key in layout.join_keys:
        data[key] = [row[key] for row in rows]
    data[LOG_TIMESTAMP_FIELD] = [stamp] * len(rows)
    data[LOG_DATE_FIELD] = [stamp.date()] * len(rows)
    data[REQUEST_ID_FIELD] = event_ids
    data[PAYMENT_ID] = [None if r is None else _text(r.get(PAYMENT_ID)) for r in requests]
    data[REQUEST_TIME_FIELD] = request_times
    data[OCCURRED_AT_FIELD] = [
        None if r is None else _instant(r.get("occurred_at")) for r in requests
    ]
    data[MODEL_VERSION_FIELD] = model_versions
    data[ROLE_FIELD] = roles
    return pa.table([pa.array(data[f.name], f.type) for f in layout.schema], schema=layout.schema)


def _instant(value: Any) -> datetime | None:
    """Return a request's ``occurred_at`` (ISO 8601 text in a stored record, or a datetime)."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def feature_log_warm(config: FeatureConfig, service: str = SERVICE) -> None:
    """Load what a first ``feature_log_write`` would, writing nothing: the feature store and
    the service, and ibis's DuckDB backend, through which Feast writes the file (imported at
    its first use, a cost the first write of a scorer would otherwise pay:
    docs/performance.md). In a child process, then settles its garbage collector
    (``events.batching.gc_settle``)."""
    import ibis

    ibis.get_backend()
    feature_store(config)
    feature_services(config)[service]
    if parent_process() is not None:
        # The scorer's log child: what it loaded lives as long as it does, and out of the
        # collector's sight each write costs markedly less CPU (docs/performance.md).
        gc_settle()


def feature_log_write(
    config: FeatureConfig, entries: Sequence[LoggedVector], service: str = SERVICE
) -> None:
    """Log ``entries`` (one micro-batch of served vectors) through Feast's feature logging: one
    ``write_logged_features`` call, one new Parquet file under the service's logging
    destination. Not idempotent by itself: logging an event again appends a later row, and
    ``logged_features`` keeps the latest. Nothing is written for an empty batch.
    """
    if not entries:
        return
    _log_write(config, log_table(config, entries, service), service)


def _log_write(config: FeatureConfig, table: pa.Table, service: str) -> None:
    log_dir(config, service).mkdir(parents=True, exist_ok=True)
    feature_store(config).write_logged_features(
        logs=table, source=feature_services(config)[service]
    )


def feature_log_pool(*, process: bool) -> Executor:
    """Return a one-worker pool to run ``feature_log_write`` off a scorer's loop: a child
    process (``process``), or a thread.

    The scorer uses the process. Feast writes the log through ibis and DuckDB: in a thread it
    held the interpreter lock for a large share of the scorer's time, and each write left a
    DuckDB table whose finalizer ran inside the next full garbage collection, a pause during
    which no batch moved (docs/performance.md). In a child process neither reaches the loop;
    the entries cross as pickles between the two processes of one scorer (never from a file).
    The child exits with its parent, killed or not. It runs at a lower priority
    (``CHILD_NICENESS``): on a busy machine a log write, which nothing waits for, yields the
    processor to the scoring loop."""
    if not process:
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="feature-log")
    return ProcessPoolExecutor(
        max_workers=1,
        mp_context=get_context("spawn"),
        initializer=_child_start,
        initargs=(os.getpid(),),
    )


# Added to the child's scheduling niceness: 10 of the 19 a Unix process may go down by.
CHILD_NICENESS = 10


def _child_start(parent: int) -> None:
    os.nice(CHILD_NICENESS)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
    # Leave without the interpreter's final clean-up: DuckDB's and Arrow's bindings report
    # every object they still hold then ("nanobind: leaked ..."), a page of noise per exit.
    atexit.register(_leave)


def _leave() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
