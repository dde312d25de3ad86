"""Point-in-time training sets: every spine row with each stream view evaluated at its instant
over the event history, exactly as ``features.windows.value_at`` finds it from the events, and
each batch view's latest snapshot at or before the instant within its ttl, exactly as a
brute-force scan of the offline rows finds it."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from django.core.management import call_command

from features.definitions import FRAUD_CAPTURE_V1, VIEWS
from features.offline import backfill
from features.ondemand import on_demand
from features.repo import apply_repo
from features.store import FeatureConfig
from features.training import service_features, training_set
from features.windows import to_us, value_at
from tests.features.simulated import CONFIG, reference_rows, simulated_day
from tests.features.stores import feature_config

# Builds training sets: fails alone if it grows (tests/memory_ceiling.py).
pytestmark = pytest.mark.memory_ceiling(2)

START = CONFIG.start
# The service of every view, so the reference checks every feature.
NAMES = [name for name, _ in service_features(FRAUD_CAPTURE_V1)]


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory) -> tuple[FeatureConfig, Path]:
    root = tmp_path_factory.mktemp("training")
    day = simulated_day(root / "history")
    config = feature_config(root)
    apply_repo(config)
    backfill(config, history=day, snapshot_every=timedelta(hours=4))
    return config, day


def _events(day: Path, topic: str) -> list[dict]:
    table = pq.read_table(day / "events" / f"{topic}.parquet")
    return [
        {**json.loads(row["payload"]), "occurred_at": row["occurred_at"]}
        for row in table.to_pylist()
    ]


def _spine(day: Path) -> pd.DataFrame:
    """Payments (with the trip's driver for every other one), then the edge cases: unknown
    entities, an instant before any event, one past the batch views' ttl, one on a snapshot
    instant, one exactly a ttl after the last snapshot."""
    drivers = {e["trip_id"]: e["driver_id"] for e in _events(day, "trips.assigned.v1")}
    rows = []
    for i, payment in enumerate(_events(day, "payments.authorized.v1")):
        rows.append(
            {
                "card_id": payment["card_id"],
                "rider_id": payment["rider_id"],
                "zone_id": payment["pickup_zone"],
                "driver_id": drivers.get(payment["trip_id"]) if i % 2 else None,
                "device_id": payment["context"]["device_id"],
                "ip_address": payment["context"]["ip"],
                "event_timestamp": payment["occurred_at"],
                "amount_cents": payment["amount_cents"],
                "distance_km": payment.get("distance_km"),
                "label": i % 3 == 0,
            }
        )
    # A payment some hours before the 8 h snapshot, so that snapshot knows its card.
    known = next(
        r
        for r in rows
        if START + timedelta(hours=2) < r["event_timestamp"] < START + timedelta(hours=7)
    )
    rows += [
        {
            **known,
            "card_id": "c-unknown",
            "rider_id": "r-unknown",
            "zone_id": "z-unknown",
            "driver_id": "d-unknown",
            "device_id": "dev-unknown",
            "ip_address": "ip-unknown",
        },
        {**known, "event_timestamp": START - timedelta(days=1)},
        {**known, "event_timestamp": START + timedelta(days=4, hours=1)},
        {**known, "event_timestamp": START + timedelta(hours=8)},  # on a snapshot instant
        # The last snapshot (24 h) is exactly a ttl (3 days) old: still served.
        {**known, "event_timestamp": START + timedelta(days=4)},
    ]
    return pd.DataFrame(rows)


def _offline_rows(config: FeatureConfig) -> dict[str, list[dict]]:
    return {
        view.name: [
            row
            for path in sorted(config.view_dir(view.name).glob("*.parquet"))
            for row in pq.read_table(path).to_pylist()
        ]
        for view in VIEWS
    }


def _reference(offline: dict[str, list[dict]], events: dict, spine_row: dict) -> dict:
    """Each stream view at the instant over its entity's events; each batch view's latest row
    at or before the instant (ties: latest created) within its ttl."""
    at = spine_row["event_timestamp"]
    values = {}
    for view in VIEWS:
        if view.mode == "stream":
            key = tuple(spine_row.get(k) or "all" for k in view.join_keys)
            found, _ = value_at(view, events.get((view.name, key), []), to_us(at))
            values.update({f.name: (found or {}).get(f.name) for f in view.features})
            continue
        candidates = [
            row
            for row in offline[view.name]
            if all(row[k] == spine_row.get(k, "all") for k in view.join_keys)
            and at - view.ttl <= row["event_timestamp"] <= at
        ]
        best = max(
            candidates,
            key=lambda row: (row["event_timestamp"], row["created_timestamp"]),
            default={},
        )
        values.update({f.name: best.get(f.name) for f in view.features})
    return values


def _plain(value):
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def test_every_spine_row_gets_the_features_a_brute_force_scan_finds(backfilled):
    config, day = backfilled
    spine = _spine(day)

    result = training_set(config, spine, FRAUD_CAPTURE_V1.name, history=day)

    assert len(result) == len(spine)
    pd.testing.assert_frame_equal(result[list(spine.columns)], spine)
    offline = _offline_rows(config)
    events = reference_rows(day)
    present = dict.fromkeys(NAMES, 0)
    for i, row in enumerate(spine.to_dict("records")):
        row["driver_id"] = row["driver_id"] or None
        expected = _reference(offline, events, row)
        got = {name: _plain(result.at[i, name]) for name in NAMES}
        assert got == expected, (i, row)
        request = {**row, "occurred_at": row["event_timestamp"].to_pydatetime()}
        assert {n: _plain(result.at[i, n]) for n in FRAUD_CAPTURE_V1.on_demand} == on_demand(
            request, expected, FRAUD_CAPTURE_V1.on_demand
        ), i
        for name, value in got.items():
            present[name] += value is not None
    # The data exercises every view: each feature has a value somewhere.
    assert [name for name, count in present.items() if count == 0] == []
    unknown, before, after, on_snapshot, at_ttl = (result.iloc[-5 + k] for k in range(5))
    assert {n: _plain(unknown[n]) for n in NAMES if not n.startswith("platform_")} == {
        n: None for n in NAMES if not n.startswith("platform_")
    }
    assert {n: _plain(before[n]) for n in NAMES} == dict.fromkeys(NAMES)
    # Past the last snapshot's ttl the batch views (3 days) are null; the stream ones (30) not.
    assert _plain(after["card_age_days"]) is None
    assert _plain(after["card_payments_24h"]) is not None
    assert _plain(on_snapshot["card_age_days"]) is not None
    assert _plain(at_ttl["card_age_days"]) is not None


def test_the_columns_are_typed_as_declared(backfilled):
    config, day = backfilled
    result = training_set(config, _spine(day).head(5), FRAUD_CAPTURE_V1.name, history=day)
    dtypes = {name: str(result[name].dtype) for name in NAMES}
    assert dtypes == {
        name: dtype.capitalize() for name, dtype in service_features(FRAUD_CAPTURE_V1)
    }
    assert str(result["hour_of_day"].dtype) == "Int64"
    assert str(result["payment_amount_cents"].dtype) == "Int64"
    assert str(result["amount_zscore_card_30d"].dtype) == "Float64"
    assert str(result["minutes_since_signup"].dtype) == "Float64"


def test_an_empty_spine_gives_an_empty_set(backfilled):
    config, day = backfilled
    result = training_set(config, _spine(day).head(0), FRAUD_CAPTURE_V1.name, history=day)
    assert len(result) == 0
    assert set(NAMES) <= set(result.columns)


def test_the_training_set_command_writes_the_set(backfilled, tmp_path, settings):
    config, day = backfilled
    settings.FEAST_PROJECT = config.project
    settings.FEAST_REGISTRY = config.registry_url
    settings.FEATURES_DATA_DIR = config.data_dir
    spine = _spine(day).head(20)
    spine.to_parquet(tmp_path / "spine.parquet")

    call_command(
        "training_set",
        "--spine",
        str(tmp_path / "spine.parquet"),
        "--out",
        str(tmp_path / "training.parquet"),
        "--history",
        str(day),
        "--service",
        FRAUD_CAPTURE_V1.name,
    )

    written = pd.read_parquet(tmp_path / "training.parquet")
    assert len(written) == 20
    assert written["card_payments_24h"].notna().all()  # evaluated over --history
    expected = training_set(config, spine, FRAUD_CAPTURE_V1.name, history=day)
    assert [
        {n: _plain(v) for n, v in row.items()} for row in written[NAMES].to_dict("records")
    ] == [{n: _plain(v) for n, v in row.items()} for row in expected[NAMES].to_dict("records")]
    assert to_us(written["event_timestamp"].iloc[0].to_pydatetime()) == to_us(
        spine["event_timestamp"].iloc[0]
    )
