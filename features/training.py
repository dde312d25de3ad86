"""Point-in-time training sets: every spine row with every feature as it was at the row's instant.

A spine row names the entities (``card_id``, ``rider_id``, ``zone_id``, ``driver_id``,
``platform_id``) and an instant (``event_timestamp``); each view contributes its latest row at or
before that instant (ties: the latest ``created_timestamp``) and no older than the view's ttl,
through Feast's ``get_historical_features`` on the DuckDB offline store. On-demand features are
then computed from the spine's request columns exactly as online (``features.ondemand``).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from features.definitions import FEATURE_SERVICES, PLATFORM_KEY, FeatureService
from features.feature_repo.services import feature_services
from features.ondemand import DTYPES, on_demand
from features.store import FeatureConfig, feature_store
from features.tables import EVENT_TIMESTAMP

# Stands in for a missing entity key: no feature row ever has it (``windows.extract`` drops
# empty keys), and Feast cannot join on a null key.
MISSING_KEY = ""
ROW = "__spine_row"
_PANDAS = {"int64": "Int64", "float64": "Float64"}


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
    config: FeatureConfig, spine: pd.DataFrame, service: str = "fraud_scoring_v1"
) -> pd.DataFrame:
    """Return ``spine`` with every feature of ``service`` as of each row's ``event_timestamp``,
    then the on-demand features: the same rows, in the same order.

    ``spine`` holds ``event_timestamp`` (aware, or naive UTC), the join keys (``card_id``,
    ``rider_id``, ``zone_id``; ``driver_id`` may be missing or null; ``platform_id`` defaults to
    ``"all"``) and any other columns (labels, request fields such as ``amount_cents``,
    ``distance_km``, ``occurred_at``: the request time defaults to ``event_timestamp``), kept as
    they are. A feature is null where no row of its view existed at or before the instant, or
    the latest is older than the view's ttl. Read only.
    """
    declared = FEATURE_SERVICES[service]
    store = feature_store(config)
    entities = _entity_frame(spine, service_join_keys(declared))
    features = service_features(declared)
    if len(spine):
        job = store.get_historical_features(
            entity_df=entities, features=feature_services(config)[service]
        )
        joined = job.to_df().sort_values(ROW).reset_index(drop=True)
    else:
        joined = pd.DataFrame({name: [] for name, _ in features})
    if len(joined) != len(spine):
        raise RuntimeError(f"point-in-time join returned {len(joined)} rows for {len(spine)}")
    result = spine.reset_index(drop=True).copy()
    if "platform_id" not in result.columns:
        result["platform_id"] = PLATFORM_KEY
    for name, dtype in features:
        result[name] = pd.array([_plain(v) for v in joined[name]], dtype=_PANDAS[dtype])
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


def _request_time(row: dict[str, Any]) -> Any:
    at = _plain(row.get("occurred_at"))
    if at is None:
        at = row[EVENT_TIMESTAMP]
    if isinstance(at, pd.Timestamp):
        at = (at.tz_localize("UTC") if at.tzinfo is None else at).to_pydatetime()
    return at
