"""Where the feature platform keeps things, and the Feast store built from it.

``FeatureConfig`` is plain data, so pure code and tests build one without Django settings;
``FeatureConfig.from_settings()`` reads the Django settings (environment variables).

Layout of ``data_dir``:

- ``offline/events/<topic>/*.parquet``: the events the stream processor accepted, appended one file
  per micro-batch (the simulator's history files have the same columns: event_id, occurred_at,
  key, payload);
- ``offline/views/<view>/*.parquet``: feature rows, the batch source of each Feast view;
- ``offline/logs/``: served feature vectors (the scorer's feature logging);
- ``duckdb/``: where the offline engine's DuckDB connections spill past their memory limit
  (``duckdb_temp_dir`` moves it);
- ``online.sqlite3``, ``state.sqlite3``: the embedded online store and window state.
"""

from __future__ import annotations

import os
import struct
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import duckdb
from feast import FeatureStore
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from feast.repo_config import RepoConfig


@dataclass(frozen=True)
class FeatureConfig:
    project: str
    registry_url: str
    online: Literal["sqlite", "redis"]
    data_dir: Path
    redis_url: str = ""
    allowed_lateness_us: int = 60_000_000
    duckdb_memory_limit: str = "1GB"
    duckdb_temp_dir: Path | None = None

    @classmethod
    def from_settings(cls) -> FeatureConfig:
        from django.conf import settings

        return cls(
            project=settings.FEAST_PROJECT,
            registry_url=settings.FEAST_REGISTRY,
            online=settings.FEATURES_ONLINE_STORE,
            data_dir=Path(settings.FEATURES_DATA_DIR),
            redis_url=settings.REDIS_URL,
            allowed_lateness_us=int(settings.FEATURES_ALLOWED_LATENESS_SECONDS * 1_000_000),
            duckdb_memory_limit=settings.FEATURES_DUCKDB_MEMORY_LIMIT,
            duckdb_temp_dir=Path(settings.FEATURES_DUCKDB_TEMP_DIR),
        )

    @property
    def offline_dir(self) -> Path:
        return self.data_dir / "offline"

    def events_dir(self, topic: str) -> Path:
        return self.offline_dir / "events" / topic

    def view_dir(self, view: str) -> Path:
        return self.offline_dir / "views" / view

    @property
    def logs_dir(self) -> Path:
        return self.offline_dir / "logs"

    @property
    def duckdb_spill_dir(self) -> Path:
        return self.duckdb_temp_dir or self.data_dir / "duckdb"

    @property
    def online_path(self) -> Path:
        return self.data_dir / "online.sqlite3"

    @property
    def state_path(self) -> Path:
        return self.data_dir / "state.sqlite3"


def redis_connection_string(url: str) -> str:
    """Return Feast's Redis ``connection_string`` (``host:port,db=N,password=...``) for a
    ``redis://`` URL."""
    parts = urlsplit(url)
    if parts.scheme not in {"redis", "rediss"} or not parts.hostname:
        raise ValueError(f"not a redis:// URL: {url!r}")
    options = [f"{parts.hostname}:{parts.port or 6379}"]
    db = parts.path.lstrip("/")
    if db:
        options.append(f"db={int(db)}")
    if parts.password:
        options.append(f"password={parts.password}")
    if parts.scheme == "rediss":
        options.append("ssl=true")
    return ",".join(options)


def repo_config(config: FeatureConfig) -> RepoConfig:
    """Return the Feast configuration: SQL registry, SQLite or Redis online, DuckDB offline."""
    if config.online == "redis":
        if not config.redis_url:
            raise ValueError("FEATURES_ONLINE_STORE=redis needs REDIS_URL")
        online = {"type": "redis", "connection_string": redis_connection_string(config.redis_url)}
    else:
        online = {"type": "sqlite", "path": str(config.online_path)}
    return RepoConfig(
        project=config.project,
        provider="local",
        registry={
            "registry_type": "sql",
            "path": config.registry_url,
            "cache_ttl_seconds": 60,
            "sqlalchemy_config_kwargs": {"pool_pre_ping": True},
        },
        online_store=online,
        offline_store={"type": "duckdb"},
        entity_key_serialization_version=3,
        repo_path=str(Path(__file__).parent / "feature_repo"),
    )


def entity_key(join_keys: Sequence[str], values: Sequence[str]) -> EntityKey:
    """Return the Feast entity key of ``values`` (strings, in ``join_keys`` order): the key the
    stream processor writes online rows under and serving reads them back by."""
    return EntityKey(join_keys=list(join_keys), entity_values=[Value(string_val=v) for v in values])


@lru_cache(maxsize=16_384)
def redis_entity_key(
    join_keys: tuple[str, ...], values: tuple[str, ...], project: str, version: int
) -> bytes:
    """Return the Redis key of the entity ``values`` (strings, in ``join_keys`` order) in
    ``project``, as Feast's Redis store builds it: the serialized entity key (``version``)
    then the project's name. Cached: batches read and write the platform row and a few zones
    again and again, and busy cards.

    Version 3, Feast's current one, is written here (a test holds it equal to Feast's
    ``serialize_entity_key``): the count of keys, then each key and each value as a type
    number, a length and UTF-8 bytes, the keys in name order. Feast builds an ``EntityKey``
    proto to encode it, several times slower (docs/performance.md), a cost paid for every card
    not in the cache (at 1,000 payments/s over 20,000 cards, nearly all of them)."""
    if version != 3:
        from feast.infra.key_encoding_utils import serialize_entity_key

        serialized = serialize_entity_key(
            entity_key(join_keys, values), entity_key_serialization_version=version
        )
        return serialized + project.encode()
    pairs = zip(join_keys, values, strict=True)
    if len(join_keys) > 1:
        pairs = sorted(pairs)
    names, texts = [], []
    for name, value in pairs:
        name_bytes, value_bytes = name.encode(), value.encode()
        names += [_STRING_HEAD.pack(_STRING_TYPE, len(name_bytes)), name_bytes]
        texts += [_STRING_HEAD.pack(_STRING_TYPE, len(value_bytes)), value_bytes]
    return b"".join([_COUNT.pack(len(join_keys)), *names, *texts, project.encode()])


# Feast's ValueType.STRING, and the little-endian unsigned ints of its entity key encoding.
_STRING_TYPE = 2
_COUNT = struct.Struct("<I")
_STRING_HEAD = struct.Struct("<II")


@lru_cache(maxsize=256)
def redis_hash_fields(view: str, features: tuple[str, ...]) -> tuple[tuple[bytes, ...], bytes]:
    """Return the fields of an entity's Redis hash that hold ``features`` of the view named
    ``view`` (its versioned name in the online store), and the field of the view's event time,
    as Feast's Redis store names them: an mmh3 of each view and feature name, and
    ``_ts:<view>``. Cached: the fields of a view are computed once, not per row."""
    from feast.infra.online_stores.helpers import _mmh3

    return tuple(_mmh3(f"{view}:{f}") for f in features), f"_ts:{view}".encode()


@lru_cache(maxsize=8)
def feature_store(config: FeatureConfig) -> FeatureStore:
    """Return the Feast store for ``config`` (one per config and process)."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    return FeatureStore(config=repo_config(config))


def duckdb_connect(config: FeatureConfig | None = None) -> duckdb.DuckDBPyConnection:
    """Return a new in-memory DuckDB connection for the offline engine, held to ``config``'s
    memory limit and spilling past it into a directory of its own under its spill directory
    (DuckDB creates it when it first spills and removes it on close; its own, so connections
    of other processes never share temporary files). Without ``config``: the default limit
    and DuckDB's own spill directory. The limit bounds DuckDB's buffers, not the Arrow tables
    a query returns."""
    if config is None:
        return duckdb.connect(config={"memory_limit": FeatureConfig.duckdb_memory_limit})
    config.duckdb_spill_dir.mkdir(parents=True, exist_ok=True)
    spill = config.duckdb_spill_dir / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    return duckdb.connect(
        config={"memory_limit": config.duckdb_memory_limit, "temp_directory": str(spill)}
    )
