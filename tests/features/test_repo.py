"""The Feast repo is derived from the declarations, applies idempotently, and serves what was
written: on the embedded SQLite online store and on a real Redis one."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from django.core.management import call_command
from feast.protos.feast.serving.ServingService_pb2 import FieldStatus
from feast.repo_config import load_repo_config
from feast.types import Float64, Int64, String

from features.definitions import (
    CARD_VELOCITY,
    ENTITIES,
    FEATURE_SERVICES,
    FRAUD_SCORING_V1,
    VIEWS,
)
from features.repo import EMPTY_FILE, apply_repo, offline_dirs_create
from features.store import FeatureConfig, feature_store, repo_config
from features.tables import view_schema
from tests.features.stores import ONLINE_STORES, applied_config, feature_config

REPO_DIR = Path(__file__).resolve().parents[2] / "features" / "feature_repo"
FEAST_TYPES = {"int64": Int64, "float64": Float64}


@pytest.fixture(params=ONLINE_STORES)
def config(request, tmp_path):
    yield from applied_config(request, tmp_path)


def _specs(config: FeatureConfig) -> dict[str, bytes]:
    registry = feature_store(config).registry
    project = config.project
    specs = {}
    for kind, items in (
        ("entity", registry.list_entities(project, allow_cache=False)),
        ("source", registry.list_data_sources(project, allow_cache=False)),
        ("view", registry.list_feature_views(project, allow_cache=False)),
        ("service", registry.list_feature_services(project, allow_cache=False)),
    ):
        for item in items:
            if item.name.startswith("__"):  # Feast's own dummy entity
                continue
            proto = item.to_proto()
            spec = proto.spec if hasattr(proto, "spec") else proto
            specs[f"{kind}:{item.name}"] = spec.SerializeToString(deterministic=True)
    return specs


def test_apply_registers_every_declared_object_and_a_second_apply_changes_nothing(tmp_path):
    config = feature_config(tmp_path)
    apply_repo(config)
    empties = {v.name: config.view_dir(v.name) / EMPTY_FILE for v in VIEWS}
    stamps = {name: path.stat().st_mtime_ns for name, path in empties.items()}
    before = _specs(config)

    apply_repo(config)

    assert _specs(config) == before
    assert sorted(before) == sorted(
        [f"entity:{e.name}" for e in ENTITIES]
        + [f"source:{v.name}_source" for v in VIEWS]
        + [f"view:{v.name}" for v in VIEWS]
        + [f"service:{name}" for name in FEATURE_SERVICES]
    )
    for view in VIEWS:
        path = empties[view.name]
        assert path.stat().st_mtime_ns == stamps[view.name]
        assert sorted(p.name for p in path.parent.iterdir()) == [EMPTY_FILE]
        table = pq.read_table(path)
        assert table.num_rows == 0
        assert table.schema == view_schema(view)


def test_the_feast_objects_follow_the_declarations(tmp_path):
    config = feature_config(tmp_path)
    apply_repo(config)
    store = feature_store(config)

    for entity in ENTITIES:
        assert store.get_entity(entity.name).join_key == entity.join_key
    for view in VIEWS:
        fv = store.get_feature_view(view.name)
        assert [(f.name, f.dtype) for f in fv.features] == [
            (f.name, FEAST_TYPES[f.dtype]) for f in view.features
        ]
        assert [(c.name, c.dtype) for c in fv.entity_columns] == [
            (key, String) for key in view.join_keys
        ]
        assert fv.ttl == view.ttl
        assert fv.online is True
        assert fv.batch_source.name == f"{view.name}_source"
        assert fv.batch_source.path == str(config.view_dir(view.name) / "*.parquet")
        assert fv.batch_source.timestamp_field == "event_timestamp"
        assert fv.batch_source.created_timestamp_column == "created_timestamp"
    service = store.get_feature_service("fraud_scoring_v1")
    assert [(p.name, [f.name for f in p.features]) for p in service.feature_view_projections] == [
        (v.name, [f.name for f in v.features]) for v in FRAUD_SCORING_V1.views
    ]


def _card_rows(at: datetime) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "card_id": ["c1"],
            "event_timestamp": [at],
            "created_timestamp": [at],
            "card_payments_10m": [3],
            "card_payments_1h": [4],
            "card_payments_24h": [5],
            "card_amount_cents_1h": [1200],
            "card_amount_cents_24h": [3400],
            "card_declines_1h": [1],
            "card_distinct_riders_24h": [2],
            "card_distinct_devices_24h": [1],
            "card_added_at": [at.timestamp() - 7200],
        }
    )


def test_written_values_come_back_and_an_unknown_entity_is_not_found(config):
    store = feature_store(config)
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    store.write_to_online_store("card_velocity", _card_rows(at))

    entity = {"rider_id": "r1", "driver_id": "d1", "zone_id": "z1", "platform_id": "all"}
    response = store.get_online_features(
        features=store.get_feature_service("fraud_scoring_v1"),
        entity_rows=[{"card_id": "c1", **entity}, {"card_id": "never-seen", **entity}],
    )

    values = response.to_dict(include_event_timestamps=True)
    names = list(response.proto.metadata.feature_names.val)
    statuses = {
        name: [FieldStatus.Name(s) for s in result.statuses]
        for name, result in zip(names, response.proto.results, strict=True)
    }
    card = [f.name for f in CARD_VELOCITY.features]
    assert {name: values[name] for name in card} == {
        "card_payments_10m": [3, None],
        "card_payments_1h": [4, None],
        "card_payments_24h": [5, None],
        "card_amount_cents_1h": [1200, None],
        "card_amount_cents_24h": [3400, None],
        "card_declines_1h": [1, None],
        "card_distinct_riders_24h": [2, None],
        "card_distinct_devices_24h": [1, None],
        "card_added_at": [at.timestamp() - 7200, None],
    }
    # Feast 0.67's Redis store reports an entity it holds nothing for as PRESENT, with no value
    # and no event time (features.serving reads that as NOT_FOUND); SQLite says NOT_FOUND.
    unknown = "NOT_FOUND" if config.online == "sqlite" else "PRESENT"
    assert {name: statuses[name] for name in card} == {n: ["PRESENT", unknown] for n in card}
    assert {name: values[f"{name}__ts"] for name in card} == {
        n: [int(at.timestamp()), 0] for n in card
    }
    # Nothing else was written: every other view has no value and no time for both rows.
    others = [f.name for v in FRAUD_SCORING_V1.views if v is not CARD_VELOCITY for f in v.features]
    assert {name: statuses[name] for name in others} == {n: [unknown, unknown] for n in others}
    assert {name: values[name] for name in others} == {n: [None, None] for n in others}
    assert {name: values[f"{name}__ts"] for name in others} == {n: [0, 0] for n in others}


def test_feature_store_yaml_mirrors_the_app_configuration(tmp_path, monkeypatch):
    config = feature_config(tmp_path)
    monkeypatch.setenv("FEAST_PROJECT", config.project)
    monkeypatch.setenv("FEAST_REGISTRY", config.registry_url)
    monkeypatch.setenv("FEATURES_DATA_DIR", str(config.data_dir))

    from_yaml = load_repo_config(REPO_DIR, REPO_DIR / "feature_store.yaml")
    in_code = repo_config(config)

    assert from_yaml.project == in_code.project
    assert from_yaml.provider == in_code.provider
    assert from_yaml.registry.registry_type == in_code.registry.registry_type == "sql"
    assert from_yaml.registry.path == in_code.registry.path
    assert from_yaml.registry.cache_ttl_seconds == in_code.registry.cache_ttl_seconds
    assert from_yaml.online_store.type == in_code.online_store.type == "sqlite"
    assert from_yaml.online_store.path == in_code.online_store.path
    assert from_yaml.offline_store.type == in_code.offline_store.type == "duckdb"
    assert from_yaml.entity_key_serialization_version == in_code.entity_key_serialization_version
    assert in_code.repo_path == REPO_DIR
    # With Redis only the online store differs, as the yaml's comment says.
    redis = repo_config(FeatureConfig(**{**config.__dict__, "online": "redis",
                                         "redis_url": "redis://h:1/2"}))  # fmt: skip
    assert (redis.online_store.type, redis.online_store.connection_string) == ("redis", "h:1,db=2")


@pytest.mark.slow
def test_the_feast_cli_sees_the_applied_repo_unchanged(tmp_path):
    """``feast plan`` over features/feature_repo finds the very objects apply_repo applied."""
    config = feature_config(tmp_path)
    apply_repo(config)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_SECRET_KEY": "tests-only-not-a-secret",
        "VAR_DIR": str(tmp_path / "var"),
        "FEAST_PROJECT": config.project,
        "FEAST_REGISTRY": config.registry_url,
        "FEATURES_DATA_DIR": str(config.data_dir),
        "FEATURES_ONLINE_STORE": "sqlite",
    }
    feast = Path(sys.executable).with_name("feast")
    result = subprocess.run(
        [str(feast), "-c", str(REPO_DIR), "plan", "--skip-source-validation"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "No changes to registry" in result.stdout


def test_the_apply_command_applies_the_repo(tmp_path, settings, capsys):
    settings.FEATURES_DATA_DIR = tmp_path / "features"
    settings.FEAST_REGISTRY = f"sqlite:///{tmp_path}/registry.sqlite3"
    settings.FEAST_PROJECT = "applycommand"

    call_command("features_apply")

    config = FeatureConfig.from_settings()
    assert [v.name for v in feature_store(config).list_feature_views()] == [v.name for v in VIEWS]
    assert "applied feature repo 'applycommand'" in capsys.readouterr().out


def test_processes_creating_the_offline_directories_at_once_all_succeed(tmp_path):
    # The stream processor and the scorer both apply the repo as they start (honcho starts them
    # together): their empty files must not collide under one temporary name.
    config = feature_config(tmp_path)
    start = threading.Barrier(6)
    errors: list[BaseException] = []

    def create() -> None:
        start.wait()
        try:
            offline_dirs_create(config)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    for view in VIEWS:
        files = sorted(p.name for p in config.view_dir(view.name).iterdir())
        assert files == [EMPTY_FILE]
        assert pq.read_table(config.view_dir(view.name) / EMPTY_FILE).num_rows == 0
