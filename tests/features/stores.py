"""Feature configurations for tests: a fresh registry, data directory and project per test, on
the embedded SQLite online store or a real Redis one."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from features.repo import apply_repo
from features.store import FeatureConfig, feature_store

ONLINE_STORES = ["sqlite", pytest.param("redis", marks=pytest.mark.redis)]


def feature_config(tmp_path: Path, *, online: str = "sqlite", redis_url: str = "") -> FeatureConfig:
    """Return a config of its own: project named for this test (Redis keys never collide),
    SQLite registry and data directory under ``tmp_path``."""
    return FeatureConfig(
        project=f"t{uuid.uuid4().hex[:12]}",
        registry_url=f"sqlite:///{tmp_path}/registry.sqlite3",
        online=online,
        data_dir=tmp_path / "features",
        redis_url=redis_url,
    )


def applied_config(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FeatureConfig]:
    """Yield an applied config on the online store ``request.param``; tear its online data
    down after (on Redis: every key of the project's views)."""
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else ""
    yield from applied_store(tmp_path, online=request.param, redis_url=redis_url)


def applied_store(
    tmp_path: Path, *, online: str = "sqlite", redis_url: str = ""
) -> Iterator[FeatureConfig]:
    """Yield a config of its own (``feature_config``) with the repo applied; tear its online
    data down after."""
    config = feature_config(tmp_path, online=online, redis_url=redis_url)
    apply_repo(config)
    yield config
    feature_store(config).teardown()
