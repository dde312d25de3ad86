"""Point-in-time training sets: every spine row with every feature as it was at the row's instant.

A spine row names the entities (``card_id``, ``rider_id``, ``zone_id``, ``driver_id``,
``platform_id``) and an instant (``event_timestamp``). Each view contributes its values at that
instant, as the scorer is held to serve them, both through the project's DuckDB engine
(``features.offline``), each connection held to ``config``'s memory limit:

- a stream view is evaluated at the instant over the event history
  (``features.offline.instant_values``, ``features.windows.value_at``): every event of the
  entity at or before the instant, windows sliding up to it, null past the view's ttl. Not the
  latest offline row at or before the instant: that row holds the values as of the entity's
  latest event, so a card's payments in the last 10 minutes read hours after its last payment
  would be the count at that payment, not 0;
- a batch view contributes its latest published snapshot at or before the instant (ties: the
  latest ``created_timestamp``) no older than its ttl (``features.offline.instant_snapshots``,
  an ``ASOF LEFT JOIN`` on the view's offline Parquet files): the semantics of Feast's
  point-in-time join, whose DuckDB store holds the whole join in memory (docs/performance.md,
  Training sets).

On-demand features are then computed from the spine's request columns exactly as online
(``features.ondemand``), a chunk of rows at a time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.definitions import (
    FEATURE_SERVICES,
    FRAUD_SCORING_V1,
    PLATFORM_KEY,
    FeatureService,
    View,
)
from features.offline.history import history_load, rows_load
from features.offline.instants import entity_requests, instant_snapshots, instant_values
from features.ondemand import DTYPES, INPUTS, REQUEST_FIELDS, on_demand
from features.store import FeatureConfig, duckdb_connect
from features.tables import EVENT_TIMESTAMP

# Stands in for a missing entity key: no feature row ever has it (``windows.extract`` drops
# empty keys, so neither the engine's rows nor the snapshots made of them have one).
MISSING_KEY = ""
# Spine rows per chunk of on-demand features: their request dicts, not the whole spine's.
ON_DEMAND_CHUNK = 65_536
_PANDAS = {"int64": "Int64", "float64": "Float64"}
_PANDAS_TYPES = {pa.int64(): pd.Int64Dtype(), pa.float64(): pd.Float64Dtype()}


def service_join_keys(service: FeatureService) -> list[str]:
    """Return the join keys of every view of ``service``, in first-seen order."""
    keys: list[str] = []
    for view in service.views:
        keys += [k for k in view.join_keys if k not in keys]
    return keys


def service_features(service: FeatureService) -> list[tuple[str, str]]:
    """Return (feature name, dtype) of every feature of ``service``'s views, in order."""
    return [(f.name, f.dtype) for view in service.views for f in view.features]


def _key_strings(column: pd.Series) -> pa.Array:
    """Return ``column``'s values as text (``str(value)``), ``MISSING_KEY`` where missing;
    strings and integers through Arrow, anything else value by value."""
    try:
        array = pa.array(column, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        array = None
    if array is not None and pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if array is None or not (
        pa.types.is_string(array.type)
        or pa.types.is_large_string(array.type)
        or pa.types.is_integer(array.type)
        or pa.types.is_null(array.type)
    ):
        array = pa.array([None if pd.isna(v) else str(v) for v in column], pa.string())
    return pc.fill_null(array.cast(pa.string()), MISSING_KEY)


def _entities(spine: pd.DataFrame, keys: list[str]) -> pa.Table:
    """Return the spine's entity keys: a string column per join key of ``keys``."""
    columns = {}
    for key in keys:
        if key in spine.columns:
            columns[key] = _key_strings(spine[key])
        else:
            columns[key] = pa.repeat(
                PLATFORM_KEY if key == "platform_id" else MISSING_KEY, len(spine)
            ).cast(pa.string())
    return pa.table(columns)


def training_set(
    config: FeatureConfig,
    spine: pd.DataFrame,
    service: str = FRAUD_SCORING_V1.name,
    *,
    history: Path | str | None = None,
) -> pd.DataFrame:
    """Return ``spine`` with every feature of ``service`` as of each row's ``event_timestamp``,
    then the on-demand features: the same rows, in the same order.

    ``spine`` holds ``event_timestamp`` (aware, or naive UTC), the join keys (``card_id``,
    ``rider_id``, ``zone_id``; ``driver_id`` may be missing or null; ``platform_id`` defaults to
    ``"all"``) and any other columns (labels, request fields such as ``amount_cents``,
    ``distance_km``, ``occurred_at``: the request time defaults to ``event_timestamp``), kept as
    they are. Stream views are evaluated over the event history at ``history`` (any layout
    ``features.offline.history_files`` reads; default: the stream processor's archive,
    ``config.offline_dir / "events"``), batch views read from ``config``'s offline store. A
    view is null where its entity had no event (stream) or snapshot (batch) at or before the
    instant, or the latest is older than the view's ttl. Read only (DuckDB may spill under
    ``config.duckdb_spill_dir`` meanwhile).
    """
    declared = FEATURE_SERVICES[service]
    entities = _entities(spine, service_join_keys(declared))
    at = _instants_us(spine)
    streamed = [v for v in declared.views if v.mode == "stream"]
    batch = [v for v in declared.views if v.mode != "stream"]
    values: dict[str, pd.api.extensions.ExtensionArray] = {}
    if streamed:
        source = Path(history) if history is not None else config.offline_dir / "events"
        values.update(_stream_values(config, source, streamed, entities, at))
    if batch:
        values.update(_batch_values(config, batch, entities, at))
    result = spine.reset_index(drop=True).copy()
    if "platform_id" not in result.columns:
        result["platform_id"] = PLATFORM_KEY
    # Column by column: a concat would copy every column once more.
    for name, _ in service_features(declared):
        result[name] = values.pop(name)
    for name, array in _on_demand_values(result, declared, at).items():
        result[name] = array
    return result


def _instants_us(spine: pd.DataFrame) -> pa.Array:
    """Return the spine's instants in µs since the epoch, a finer instant rounded down (an
    event at the instant's microsecond is at or before it)."""
    stamps = pd.to_datetime(spine[EVENT_TIMESTAMP], utc=True).dt.as_unit("ns")
    return pa.array(stamps.astype("int64").to_numpy() // 1_000, pa.int64())


def _column(table: pa.Table, name: str, dtype: str) -> pd.api.extensions.ExtensionArray:
    return pd.array(
        table.column(name).to_pandas(types_mapper=_PANDAS_TYPES.get), dtype=_PANDAS[dtype]
    )


def _distinct_keys(view: View, entities: pa.Table) -> set[tuple[str, ...]]:
    keys = list(view.join_keys)
    distinct = entities.select(keys).group_by(keys).aggregate([])
    return set(zip(*(distinct.column(k).to_pylist() for k in keys), strict=True))


def _stream_values(
    config: FeatureConfig,
    history: Path,
    views: list[View],
    entities: pa.Table,
    at: pa.Array,
) -> dict[str, pd.api.extensions.ExtensionArray]:
    """Return each feature of the stream ``views`` at every spine row's instant, over the
    events under ``history`` (only the spine's entities are loaded)."""
    wanted = {view.name: _distinct_keys(view, entities) for view in views}
    # An empty spine reads nothing: the archive may be large.
    loaded = (
        history_load(history, views=views, keys=wanted, config=config)
        if len(at)
        else rows_load([], views=views, config=config)
    )
    values = {}
    with loaded.con:
        for view in views:
            table = instant_values(loaded, view, entity_requests(view, entities, at))
            values.update({f.name: _column(table, f.name, f.dtype) for f in view.features})
    return values


def _batch_values(
    config: FeatureConfig, views: list[View], entities: pa.Table, at: pa.Array
) -> dict[str, pd.api.extensions.ExtensionArray]:
    """Return each feature of the batch ``views`` as of every spine row's instant: the latest
    snapshot at or before it within the view's ttl, from the view's offline Parquet files."""
    values = {}
    with duckdb_connect(config) as con:
        for view in views:
            files = sorted(config.view_dir(view.name).glob("*.parquet"))
            table = instant_snapshots(con, view, entity_requests(view, entities, at), files=files)
            values.update({f.name: _column(table, f.name, f.dtype) for f in view.features})
    return values


def _on_demand_values(
    result: pd.DataFrame, service: FeatureService, at: pa.Array
) -> dict[str, pd.api.extensions.ExtensionArray]:
    """Return each on-demand feature of ``service`` for every row of ``result`` (the spine
    with the stored features): its request fields (``features.ondemand.REQUEST_FIELDS``; the
    request time ``occurred_at`` where given, else the row's instant) and the stored features
    the on-demand ones read."""
    names = list(service.on_demand)
    inputs = sorted({name for n in names for name in INPUTS[n]} & set(result.columns))
    fields = [f for f in REQUEST_FIELDS if f in result.columns and f != "occurred_at"]
    seconds = at.to_numpy() / 1e6
    out: dict[str, list] = {name: [] for name in names}
    for start in range(0, len(result), ON_DEMAND_CHUNK):
        part = result.iloc[start : start + ON_DEMAND_CHUNK]
        columns = {c: _objects(part[c]) for c in [*fields, *inputs]}
        occurred = (
            _objects(part["occurred_at"]) if "occurred_at" in part.columns else [None] * len(part)
        )
        for i, moment in enumerate(occurred):
            request = {f: columns[f][i] for f in fields}
            request["occurred_at"] = (
                _request_time(moment) if moment is not None else float(seconds[start + i])
            )
            extra = on_demand(request, {n: columns[n][i] for n in inputs}, names)
            for name in names:
                out[name].append(extra[name])
    return {name: pd.array(out[name], dtype=_PANDAS[DTYPES[name]]) for name in names}


def _objects(column: pd.Series) -> list[Any]:
    """Return ``column``'s values as Python objects, ``None`` where missing."""
    return column.astype(object).where(column.notna(), None).tolist()


def _request_time(moment: Any) -> Any:
    if isinstance(moment, pd.Timestamp):
        moment = (moment.tz_localize("UTC") if moment.tzinfo is None else moment).to_pydatetime()
    return moment
