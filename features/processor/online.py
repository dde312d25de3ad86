"""The stream processor's writes to the Feast online store: each touched entity's latest row
per view, as Feast itself would write it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from feast.protos.feast.types.Value_pb2 import Value
from google.protobuf.timestamp_pb2 import Timestamp

from features.definitions import View
from features.store import (
    FeatureConfig,
    entity_key,
    feature_store,
    redis_entity_key,
    redis_hash_fields,
    repo_config,
)
from features.tables import CREATED_TIMESTAMP, EVENT_TIMESTAMP
from features.windows import moment


class OnlineWriter:
    """Writes feature rows to the Feast online store of ``config``.

    On Redis, every view's rows of a batch go in one pipeline of one ``HSET`` per entity:
    Feast keeps an entity's views in one hash (a field per view and feature, named by an mmh3
    of the two, and the view's event time), so a card's rows of several views are one command.
    The fields and values are those Feast's own ``online_write_batch`` writes (a test holds
    the hashes equal); the field names are computed once per view, not per row. Other stores
    get ``online_write_batch`` per view, with rows built here (no ``write_to_online_store``
    DataFrame round trip).

    The processor decides which row is the latest, so Feast's Redis check that skips a row not
    newer than the stored one is off (``skip_dedup``, and no such check here): a corrected row
    at the same event time must replace the stored one.
    """

    def __init__(self, config: FeatureConfig):
        from feast.infra.online_stores.helpers import get_online_store_from_config

        self.store = feature_store(config)
        self.repo_config = repo_config(config)
        if config.online == "redis":
            self.repo_config.online_store.skip_dedup = True
        self.online_store = get_online_store_from_config(self.repo_config.online_store)
        self._feature_views: dict[str, Any] = {}

    def _feature_view(self, name: str) -> Any:
        if name not in self._feature_views:
            self._feature_views[name] = self.store.get_feature_view(name)
        return self._feature_views[name]

    def write_views(self, rows: Sequence[tuple[View, Sequence[Mapping[str, Any]]]]) -> None:
        """Write each view's records (``view_table`` columns, timestamps in µs) as the online
        rows of their entities, replacing what is there; on Redis in one round trip.
        Idempotent."""
        from feast.infra.online_stores.redis import RedisOnlineStore

        if isinstance(self.online_store, RedisOnlineStore):
            self._redis_write(rows)
            return
        for view, records in rows:
            keys = list(view.join_keys)
            data = [
                (
                    entity_key(keys, [r[k] for k in keys]),
                    {name: _value(r[name], dtype) for name, dtype in _dtypes(view)},
                    moment(r[EVENT_TIMESTAMP]),
                    moment(r[CREATED_TIMESTAMP]),
                )
                for r in records
            ]
            self.online_store.online_write_batch(
                self.repo_config, self._feature_view(view.name), data, None
            )

    def _redis_write(self, rows: Sequence[tuple[View, Sequence[Mapping[str, Any]]]]) -> None:
        from feast.infra.online_stores.redis import _versioned_fv_name

        repo = self.repo_config
        project, version = repo.project, repo.entity_key_serialization_version
        hashes: dict[bytes, dict[bytes, bytes]] = {}
        for view, records in rows:
            keys = tuple(view.join_keys)
            features = _dtypes(view)
            name = _versioned_fv_name(self._feature_view(view.name), repo)
            fields, stamp_field = redis_hash_fields(name, tuple(f for f, _ in features))
            for r in records:
                key = redis_entity_key(keys, tuple(r[k] for k in keys), project, version)
                mapping = hashes.setdefault(key, {})
                stamp = Timestamp()
                stamp.FromDatetime(moment(r[EVENT_TIMESTAMP]))
                mapping[stamp_field] = stamp.SerializeToString()
                for (feature, dtype), hashed in zip(features, fields, strict=True):
                    mapping[hashed] = _encoded(r[feature], dtype)
        if not hashes:
            return
        ttl = repo.online_store.key_ttl_seconds
        client = self.online_store._get_client(repo.online_store)
        with client.pipeline(transaction=False) as pipe:
            for key, mapping in hashes.items():
                pipe.hset(key, mapping=mapping)
                if ttl:
                    pipe.expire(name=key, time=ttl)
            pipe.execute()


def _dtypes(view: View) -> list[tuple[str, str]]:
    return [(f.name, f.dtype) for f in view.features]


def _encoded(v: Any, dtype: str) -> bytes:
    if dtype == "int64" and v is not None:
        return _int64(int(v))
    return _value(v, dtype).SerializeToString()


@lru_cache(maxsize=8192)
def _int64(v: int) -> bytes:
    # Window counts repeat endlessly (0, 1, 2...): each is serialized once. (Not floats: 0.0
    # and -0.0 are equal keys of a cache, and different bytes.)
    return _value(v, "int64").SerializeToString()


def _value(v: Any, dtype: str) -> Value:
    if v is None:
        return Value()
    return Value(int64_val=int(v)) if dtype == "int64" else Value(double_val=float(v))
