"""The stream processor's online writer on Redis: every view of a batch in one pipeline of one
HSET per entity, leaving each entity's hash exactly as Feast's own ``online_write_batch``
leaves it."""

from __future__ import annotations

import pytest
import redis

from features.definitions import VIEWS_BY_NAME
from features.processor.online import OnlineWriter, _value, moment
from features.repo import apply_repo
from features.store import entity_key, feature_store, redis_entity_key
from features.tables import CREATED_TIMESTAMP, EVENT_TIMESTAMP
from tests.features.stores import feature_config

pytestmark = pytest.mark.redis

T0 = 1_764_000_000_123_456  # µs since the epoch


def _rows() -> dict:
    """Rows of three views, two of them (driver activity and fraud) of the same drivers, with
    nulls, at several event times."""

    def row(view: str, keys: dict, i: int) -> dict:
        features = VIEWS_BY_NAME[view].features
        values = {
            f.name: None if (i + n) % 4 == 0 else (i * 10 + n) * (1 if f.dtype == "int64" else 0.5)
            for n, f in enumerate(features)
        }
        at = T0 + i * 1_000_003
        return {**keys, **values, EVENT_TIMESTAMP: at, CREATED_TIMESTAMP: at + 7}

    return [
        (
            VIEWS_BY_NAME["driver_activity"],
            [row("driver_activity", {"driver_id": f"d{i}"}, i) for i in range(6)],
        ),
        (
            VIEWS_BY_NAME["driver_fraud"],
            [row("driver_fraud", {"driver_id": f"d{i}"}, i + 3) for i in range(2, 8)],
        ),
        (
            VIEWS_BY_NAME["driver_rider_pair"],
            [
                row("driver_rider_pair", {"driver_id": f"d{i}", "rider_id": f"r{i}"}, i)
                for i in range(3)
            ],
        ),
    ]


def _hashes(client: redis.Redis, project: str) -> dict:
    """Return every hash of ``project`` by its key without the project's name."""
    suffix = project.encode()
    return {
        key[: -len(suffix)]: client.hgetall(key)
        for key in client.scan_iter()
        if key.endswith(suffix)
    }


def test_the_hashes_written_equal_those_feasts_online_write_batch_writes(redis_url, tmp_path):
    mine = feature_config(tmp_path / "mine", online="redis", redis_url=redis_url)
    feasts = feature_config(tmp_path / "feast", online="redis", redis_url=redis_url)
    for config in (mine, feasts):
        apply_repo(config)
    rows = _rows()

    OnlineWriter(mine).write_views(rows)
    # Feast's own write of the same rows, view by view, as the writer did before.
    reference = OnlineWriter(feasts)
    for view, records in rows:
        keys = list(view.join_keys)
        data = [
            (
                entity_key(keys, [r[k] for k in keys]),
                {f.name: _value(r[f.name], f.dtype) for f in view.features},
                moment(r[EVENT_TIMESTAMP]),
                moment(r[CREATED_TIMESTAMP]),
            )
            for r in records
        ]
        reference.online_store.online_write_batch(
            reference.repo_config, reference._feature_view(view.name), data, None
        )

    client = redis.Redis.from_url(redis_url)
    written, expected = _hashes(client, mine.project), _hashes(client, feasts.project)
    assert written == expected
    # 8 drivers (two views share the hash of d2..d5) and 3 pairs.
    assert len(written) == 11
    assert max(len(fields) for fields in written.values()) == sum(
        len(VIEWS_BY_NAME[v].features) + 1 for v in ("driver_activity", "driver_fraud")
    )
    for config in (mine, feasts):
        feature_store(config).teardown()


@pytest.mark.parametrize(
    ("join_keys", "values"),
    [
        (("card_id",), ("card-0042",)),
        (("platform_id",), ("",)),
        (("rider_id",), ("rider-ü-東京",)),
        # Feast orders several keys by name; the values follow their keys.
        (("zone_id", "hour", "card_id"), ("Z-1-1", "07", "c")),
    ],
)
def test_the_redis_key_is_feasts_serialized_entity_key_and_project(join_keys, values):
    from feast.infra.key_encoding_utils import serialize_entity_key

    ours = redis_entity_key.__wrapped__(join_keys, values, "proj_x", 3)

    feasts = serialize_entity_key(entity_key(join_keys, values), entity_key_serialization_version=3)
    assert ours == feasts + b"proj_x"
