"""Batch materialisation: a snapshot of every batch view over the archived events, appended
offline and published online; staleness per view."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from django.conf import settings as django_settings

from features.definitions import BATCH_VIEWS, STREAM_VIEWS, VIEWS_BY_NAME
from features.materialize import (
    feature_view_staleness,
    last_materialized,
    materialize_batch_views,
)
from features.offline import (
    backfill,
    history_files,
    history_load,
    key_columns,
    snapshots_written,
)
from features.repo import EMPTY_FILE, apply_repo
from features.store import FeatureConfig, feature_store
from features.tasks import materialize_batch_views as task
from features.windows import to_us
from tests.features.simulated import CONFIG, simulated_day
from tests.features.stores import ONLINE_STORES, applied_config

NOW = CONFIG.start + timedelta(hours=12)


@pytest.fixture(scope="module")
def day(tmp_path_factory) -> Path:
    return simulated_day(tmp_path_factory.mktemp("history"))


@pytest.fixture(params=ONLINE_STORES)
def config(request, tmp_path):
    yield from applied_config(request, tmp_path)


def _archive(day: Path, config: FeatureConfig) -> None:
    """Lay the simulated day out as the stream processor archives events."""
    for topic, (path,) in history_files(day).items():
        directory = config.events_dir(topic)
        directory.mkdir(parents=True)
        pq.write_table(pq.read_table(path), directory / "batch-000001.parquet")


def _online(config: FeatureConfig, view_name: str, keys: list[tuple[str, ...]]) -> list[dict]:
    view = VIEWS_BY_NAME[view_name]
    response = (
        feature_store(config)
        .get_online_features(
            features=[f"{view.name}:{f.name}" for f in view.features],
            entity_rows=[dict(zip(view.join_keys, key, strict=True)) for key in keys],
        )
        .to_dict()
    )
    return [{f.name: response[f.name][i] for f in view.features} for i in range(len(keys))]


def test_materialising_publishes_each_batch_views_snapshot_offline_and_online(day, config):
    _archive(day, config)
    expected = history_load(day)

    result = materialize_batch_views(config, now=NOW)

    assert result.at == NOW
    assert last_materialized(config) == {v.name: to_us(NOW) for v in BATCH_VIEWS}
    for view in BATCH_VIEWS:
        snapshot = expected.snapshot(view, at_us=to_us(NOW)).to_pylist()
        assert result.rows[view.name] == len(snapshot) > 0
        (path,) = [p for p in config.view_dir(view.name).glob("*.parquet") if p.name != EMPTY_FILE]
        written = pq.read_table(path).to_pylist()
        assert {row["event_timestamp"] for row in written} == {NOW}
        assert [
            {k: row[k] for k in [*view.join_keys, *(f.name for f in view.features)]}
            for row in written
        ] == [
            {
                **dict(zip(view.join_keys, (row[k] for k in key_columns(view)), strict=True)),
                **{f.name: row[f.name] for f in view.features},
            }
            for row in snapshot
        ]
        keys = [tuple(row[k] for k in key_columns(view)) for row in snapshot]
        assert _online(config, view.name, keys) == [
            {f.name: row[f.name] for f in view.features} for row in snapshot
        ]


def test_materialising_twice_for_the_same_instant_serves_the_same_values(day, config):
    _archive(day, config)
    first = materialize_batch_views(config, now=NOW)
    view = VIEWS_BY_NAME["rider_profile"]
    keys = [
        tuple(row[k] for k in view.join_keys) for row in pq.read_table(first.files[0]).to_pylist()
    ]
    served = _online(config, view.name, keys)

    second = materialize_batch_views(config, now=NOW)

    assert second.rows == first.rows
    assert _online(config, view.name, keys) == served
    for view in BATCH_VIEWS:
        assert len(list(config.view_dir(view.name).glob("*.parquet"))) == 3  # empty + 2 runs


def test_a_snapshot_whose_values_are_all_null_replaces_the_older_values_online(day, config):
    _archive(day, config)
    materialize_batch_views(config, now=NOW)
    view = VIEWS_BY_NAME["zone_profile"]
    keys = [
        tuple(r[k] for k in key_columns(view))
        for r in history_load(day).snapshot(view, at_us=to_us(NOW)).to_pylist()
    ]
    assert any(
        row["zone_median_fare_per_km_30d"] is not None for row in _online(config, view.name, keys)
    )

    # Forty days on, no zone has a trip within 30 days: every median is null.
    materialize_batch_views(config, now=NOW + timedelta(days=40))

    assert _online(config, view.name, keys) == [{"zone_median_fare_per_km_30d": None}] * len(keys)


def test_an_empty_archive_materialises_nothing_but_the_instant(config):
    result = materialize_batch_views(config, now=NOW)

    assert result.rows == {v.name: 0 for v in BATCH_VIEWS}
    assert result.files == []
    assert feature_view_staleness(config, NOW + timedelta(minutes=5)) == {
        **{v.name: None for v in STREAM_VIEWS},
        **{v.name: 300.0 for v in BATCH_VIEWS},
    }


def test_staleness_is_the_age_of_each_views_newest_data(day, tmp_path):
    config = FeatureConfig(
        project="staleness",
        registry_url=f"sqlite:///{tmp_path}/registry.sqlite3",
        online="sqlite",
        data_dir=tmp_path / "features",
    )
    assert feature_view_staleness(config, NOW) == {
        v.name: None for v in (*STREAM_VIEWS, *BATCH_VIEWS)
    }
    backfill(config, history=day, views=STREAM_VIEWS, end=NOW)
    history = history_load(day, views=STREAM_VIEWS)
    newest = {
        view.name: max(history.stream_rows(view, end_us=to_us(NOW)).column("ts").to_pylist())
        for view in STREAM_VIEWS
    }
    later = NOW + timedelta(hours=1)

    staleness = feature_view_staleness(config, later)

    assert staleness == {
        **{name: (to_us(later) - ts) / 1e6 for name, ts in newest.items()},
        **{v.name: None for v in BATCH_VIEWS},
    }


def test_the_task_materialises_with_the_settings_and_beat_runs_it(day, tmp_path, settings):
    settings.FEAST_PROJECT = "materializetask"
    settings.FEAST_REGISTRY = f"sqlite:///{tmp_path}/registry.sqlite3"
    settings.FEATURES_DATA_DIR = tmp_path / "features"
    settings.FEATURES_ONLINE_STORE = "sqlite"
    config = FeatureConfig.from_settings()
    apply_repo(config)
    _archive(day, config)

    rows = task()

    # The wall clock is after the whole simulated day: every entity is in the snapshot.
    history = history_load(day, views=BATCH_VIEWS)
    assert rows == {v.name: len(history.keys(v)) for v in BATCH_VIEWS}
    assert set(last_materialized(config)) == {v.name for v in BATCH_VIEWS}
    # The archived day had no snapshot: the task wrote the hourly ones the beat would have.
    zone = VIEWS_BY_NAME["zone_profile"]
    caught_up = snapshots_written(config, zone)
    assert len(caught_up) >= 20
    assert all(at % 3_600_000_000 == 0 for at in caught_up[:-1])
    task()
    # The second run caught nothing up: only its own snapshot of now is new.
    assert len(snapshots_written(config, zone)) == len(caught_up) + 1
    assert django_settings.CELERY_BEAT_SCHEDULE["features-materialize-batch-views"] == {
        "task": "features.materialize_batch_views",
        "schedule": django_settings.FEATURES_MATERIALIZE_EVERY_SECONDS,
    }
