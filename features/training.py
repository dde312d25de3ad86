"""Point-in-time training sets: every spine row with every feature as it was at the row's instant.

A spine row names the entities (``card_id``, ``rider_id``, ``zone_id``, ``driver_id``,
``platform_id``) and an instant (``event_timestamp``). Each view contributes its values at that
instant, as the scorer is held to serve them:

- a stream view is evaluated at the instant over the event history by the DuckDB engine
  (``features.offline.instants``, ``features.windows.value_at``): every event of the entity at
  or before the instant, windows sliding up to it, null past the view's ttl. Not the latest
  offline row at or before the instant: that row holds the values as of the entity's latest
  event, so a card's payments in the last 10 minutes read hours after its last payment would
  be the count at that payment, not 0;
- a batch view contributes its latest snapshot at or before the instant (ties: the latest
  ``created_timestamp``) no older than its ttl, through Feast's ``get_historical_features`` on
  the DuckDB offline store: a snapshot is what was published online at the time.

On-demand features are then computed from the spine's request columns exactly as online
(``features.ondemand``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from features.definitions import FEATURE_SERVICES, PLATFORM_KEY, FeatureService, View
from features.offline.history import history_load, rows_load
from features.offline.instants import instant_requests, instant_values
from features.ondemand import DTYPES, on_demand
from features.store import FeatureConfig, feature_store
from features.tables import EVENT_TIMESTAMP

# Stands in for a missing entity key: no feature row ever has it (``windows.extract`` drops
# empty keys), and Feast cannot join on a null key.
MISSING_KEY = ""
ROW = "__spine_row"
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


def _entity_frame(spine: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(index=range(len(spine)))
    for key in keys:
        if key in spine.columns:
            values = spine[key].astype(object).where(spine[key].notna(), None).tolist()
        else:
            values = [PLATFORM_KEY if key == "platform_id" else None] * len(spine)
        frame[key] = [MISSING_KEY if v is None else str(v) for v in values]
    frame[EVENT_TIMESTAMP] = pd.to_datetime(spine[EVENT_TIMESTAMP].to_numpy(), utc=True)
    frame[ROW] = range(len(spine))
    return frame


def _plain(value: Any) -> Any:
    """Return ``value`` with pandas' and numpy's missing markers (NaN, NaT, NA) as ``None``."""
    if value is None:
        return None
    missing = pd.isna(value)
    return None if isinstance(missing, bool) and missing else value


def training_set(
    config: FeatureConfig,
    spine: pd.DataFrame,
    service: str = "fraud_scoring_v1",
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
    instant, or the latest is older than the view's ttl. Read only.
    """
    declared = FEATURE_SERVICES[service]
    entities = _entity_frame(spine, service_join_keys(declared))
    features = service_features(declared)
    streamed = [v for v in declared.views if v.mode == "stream"]
    batch = [v for v in declared.views if v.mode != "stream"]
    values: dict[str, pd.api.extensions.ExtensionArray] = {}
    if streamed:
        source = Path(history) if history is not None else config.offline_dir / "events"
        values.update(_stream_values(config, source, streamed, entities))
    if batch:
        values.update(_batch_values(config, batch, entities))
    result = spine.reset_index(drop=True).copy()
    if "platform_id" not in result.columns:
        result["platform_id"] = PLATFORM_KEY
    for name, _ in features:
        result[name] = values[name]
    requests = result.to_dict("records")
    extra = [
        on_demand(
            {**{k: _plain(v) for k, v in row.items()}, "occurred_at": _request_time(row)},
            {name: _plain(row[name]) for name, _ in features},
        )
        for row in requests
    ]
    for name in declared.on_demand:
        result[name] = pd.array([e[name] for e in extra], dtype=_PANDAS[DTYPES[name]])
    return result


def _instants_us(entities: pd.DataFrame) -> list[int]:
    """Return the spine's instants in µs since the epoch, a finer instant rounded down (an
    event at the instant's microsecond is at or before it)."""
    stamps = entities[EVENT_TIMESTAMP].dt.as_unit("ns")
    return (stamps.astype("int64") // 1_000).tolist()


def _stream_values(
    config: FeatureConfig, history: Path, views: list[View], entities: pd.DataFrame
) -> dict[str, pd.api.extensions.ExtensionArray]:
    """Return each feature of the stream ``views`` at every spine row's instant, over the
    events under ``history`` (only the spine's entities are loaded)."""
    at = _instants_us(entities)
    keys = {
        view.name: [tuple(row) for row in entities[list(view.join_keys)].itertuples(index=False)]
        for view in views
    }
    wanted = {name: set(view_keys) for name, view_keys in keys.items()}
    # An empty spine reads nothing: the archive may be large.
    loaded = (
        history_load(history, views=views, keys=wanted, config=config)
        if len(entities)
        else rows_load([], views=views, config=config)
    )
    values = {}
    for view in views:
        table = instant_values(loaded, view, instant_requests(view, keys[view.name], at))
        for f in view.features:
            values[f.name] = pd.array(
                table.column(f.name).to_pandas(types_mapper=_PANDAS_TYPES.get),
                dtype=_PANDAS[f.dtype],
            )
    return values


def _batch_values(
    config: FeatureConfig, views: list[View], entities: pd.DataFrame
) -> dict[str, pd.api.extensions.ExtensionArray]:
    """Return each feature of the batch ``views`` as of every spine row's instant: the latest
    snapshot at or before it within the view's ttl (Feast's point-in-time join)."""
    names = [f.name for view in views for f in view.features]
    if len(entities):
        job = feature_store(config).get_historical_features(
            entity_df=entities,
            features=[f"{view.name}:{f.name}" for view in views for f in view.features],
        )
        joined = job.to_df().sort_values(ROW).reset_index(drop=True)
    else:
        joined = pd.DataFrame({name: [] for name in names})
    if len(joined) != len(entities):
        raise RuntimeError(f"point-in-time join returned {len(joined)} rows for {len(entities)}")
    return {
        f.name: pd.array([_plain(v) for v in joined[f.name]], dtype=_PANDAS[f.dtype])
        for view in views
        for f in view.features
    }


def _request_time(row: dict[str, Any]) -> Any:
    at = _plain(row.get("occurred_at"))
    if at is None:
        at = row[EVENT_TIMESTAMP]
    if isinstance(at, pd.Timestamp):
        at = (at.tz_localize("UTC") if at.tzinfo is None else at).to_pydatetime()
    return at
