"""Online feature vectors for scoring: one Feast read for a micro-batch of requests.

A request is a ``payments.authorized.v1`` payload; its entities fill the keys of every view of
the feature service (``pickup_zone`` is the zone, ``driver_id`` when the payload has one, the
platform key always). An entity the online store has never seen comes back ``NOT_FOUND`` with
``None`` values and no event time, on SQLite and Redis alike: a normal answer, not an error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from feast.protos.feast.serving.ServingService_pb2 import FieldStatus
from feast.type_map import feast_value_type_to_python_type

from features.definitions import FEATURE_SERVICES, PLATFORM_KEY
from features.feature_repo.services import feature_services
from features.ondemand import on_demand
from features.store import FeatureConfig, feature_store
from features.training import MISSING_KEY, service_features, service_join_keys

# Request field -> join key; the platform key is a constant.
REQUEST_KEYS: Mapping[str, str] = {
    "card_id": "card_id",
    "rider_id": "rider_id",
    "driver_id": "driver_id",
    "zone_id": "pickup_zone",
}


@dataclass(frozen=True)
class ServedVector:
    """One request's features as served: stored values with Feast's status and event time for
    each, and the on-demand features computed from the request and those values."""

    values: dict[str, Any]
    statuses: dict[str, str]
    event_timestamps: dict[str, datetime | None]
    on_demand: dict[str, Any]

    @property
    def features(self) -> dict[str, Any]:
        """Every feature, stored then on-demand: the model's input."""
        return {**self.values, **self.on_demand}


def entity_row(request: Mapping[str, Any], join_keys: Sequence[str]) -> dict[str, str]:
    """Return the Feast entity row of ``request`` (a payment payload) for ``join_keys``."""
    row = {}
    for key in join_keys:
        if key == "platform_id":
            row[key] = PLATFORM_KEY
            continue
        value = request.get(REQUEST_KEYS.get(key, key))
        row[key] = MISSING_KEY if value is None else str(value)
    return row


def online_vector(
    config: FeatureConfig, requests: Sequence[Mapping[str, Any]], service: str = "fraud_scoring_v1"
) -> list[ServedVector]:
    """Return the served vector of each of ``requests`` (payment payloads), in order, from one
    ``get_online_features`` call with feature service ``service``. Read only."""
    if not requests:
        return []
    declared = FEATURE_SERVICES[service]
    store = feature_store(config)
    keys = service_join_keys(declared)
    response = store.get_online_features(
        # The repo's own object, as applied: reading it back from the SQL registry costs ~5 ms.
        features=feature_services(config)[service],
        entity_rows=[entity_row(r, keys) for r in requests],
    ).proto
    names = [name for name, _ in service_features(declared)]
    wanted = set(names)
    columns = {
        name: result
        for name, result in zip(response.metadata.feature_names.val, response.results, strict=True)
        if name in wanted
    }
    # Column by column: the proto's repeated fields are slow to index, and each view's row has
    # one timestamp shared by its features.
    values = [dict.fromkeys(names) for _ in requests]
    statuses = [dict.fromkeys(names, "NOT_FOUND") for _ in requests]
    stamps: list[dict[str, datetime | None]] = [dict.fromkeys(names) for _ in requests]
    times: dict[tuple[int, int], datetime] = {}
    for name in names:
        result = columns[name]
        for i, (value, status, stamp) in enumerate(
            zip(result.values, result.statuses, result.event_timestamps, strict=True)
        ):
            moment = (stamp.seconds, stamp.nanos)
            # Feast 0.67's Redis store reports an entity it holds nothing for as PRESENT, with
            # no value and no timestamp; every row written has an event time.
            if moment == (0, 0):
                continue
            statuses[i][name] = _STATUS_NAMES[status]
            kind = value.WhichOneof("val")
            if kind is not None:
                values[i][name] = _python(value, kind)
            if moment not in times:
                times[moment] = stamp.ToDatetime(tzinfo=UTC)
            stamps[i][name] = times[moment]
    return [
        ServedVector(values[i], statuses[i], stamps[i], on_demand(request, values[i]))
        for i, request in enumerate(requests)
    ]


_STATUS_NAMES = {number: FieldStatus.Name(number) for number in FieldStatus.values()}
_SCALARS = {"int64_val", "double_val", "int32_val", "float_val", "string_val", "bool_val"}


def _python(value: Any, kind: str) -> Any:
    if kind in _SCALARS:
        return getattr(value, kind)
    return feast_value_type_to_python_type(value)
