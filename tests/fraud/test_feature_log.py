"""Served-feature logging: what the scorer served comes back bit for bit, one row per event,
through Feast's feature logging files."""

from __future__ import annotations

import json
import math
import struct
import uuid
from datetime import UTC, datetime, timedelta

import pandas as pd
import pyarrow.parquet as pq
import pytest

from features.definitions import FRAUD_SCORING_V1
from features.served_log import log_dir, logged_features
from features.serving import ServedVector, online_vector
from features.store import feature_store
from features.training import service_features
from fraud.feature_log import (
    LoggedVector,
    LogItem,
    feature_log_warm,
    feature_log_write,
    log_items_table,
    log_table,
)
from fraud.scoring import unserved_vector, vector_record
from tests.features.stores import applied_store

NAMES = [name for name, _ in service_features(FRAUD_SCORING_V1)]
DTYPES = dict(service_features(FRAUD_SCORING_V1))
AT = datetime(2025, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)


@pytest.fixture
def config(tmp_path):
    yield from applied_store(tmp_path)


def _vector(seed: int) -> ServedVector:
    """A vector with every kind of value: exact floats, big ints, nulls, every status."""
    values, statuses, stamps = {}, {}, {}
    for i, name in enumerate(NAMES):
        kind = (i + seed) % 4
        if kind == 3:
            values[name], statuses[name], stamps[name] = None, "NOT_FOUND", None
            continue
        stamps[name] = AT - timedelta(microseconds=7 * i + seed)
        if kind == 2:
            values[name], statuses[name] = None, "PRESENT"
        elif DTYPES[name] == "int64":
            values[name], statuses[name] = 2**62 + i + seed, "PRESENT"
        else:
            values[name] = [0.1 + 0.2, 5e-324, -0.0, 1.7976931348623157e308][(i + seed) % 4]
            statuses[name] = "OUTSIDE_MAX_AGE" if i % 5 == 0 else "PRESENT"
    on_demand = {
        "amount_to_rider_avg_fare": 1 / 3 + seed,
        "fare_per_km_to_zone_median": None,
        "hour_of_day": 12,
        "is_new_card": seed % 2,
        "minutes_since_signup": 1e-9 * (seed + 1),
    }
    return ServedVector(values, statuses, stamps, on_demand)


def _request(i: int) -> dict:
    return {
        "payment_id": f"p-{i}",
        "card_id": f"c-{i}",
        "rider_id": f"r-{i}",
        "pickup_zone": "Z-1",
        "amount_cents": 1200,
        "occurred_at": AT.isoformat(),
    }


def _entry(i: int, **overrides) -> LoggedVector:
    values = {
        "event_id": str(uuid.UUID(int=i)),
        "request_time": AT + timedelta(microseconds=i),
        "model_version": "fraud-lgbm-test",
        "role": "champion",
        "vector": _vector(i),
        "request": _request(i),
    }
    return LoggedVector(**{**values, **overrides})


def _bits(value):
    """Compare floats by their bits (-0.0 is not 0.0), pandas' missing markers as None."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float):
        return struct.pack("<d", value)
    return value


def _plain(value):
    if value is pd.NA:
        return None
    return value.item() if hasattr(value, "item") else value


def _logged(row: pd.Series) -> ServedVector:
    return ServedVector(
        {n: _plain(row[n]) for n in NAMES},
        {n: row[f"{n}__status"] for n in NAMES},
        {
            n: None if pd.isna(row[f"{n}__timestamp"]) else row[f"{n}__timestamp"].to_pydatetime()
            for n in NAMES
        },
        {n: _plain(row[n]) for n in FRAUD_SCORING_V1.on_demand},
    )


def _assert_same(got: ServedVector, served: ServedVector) -> None:
    assert {k: _bits(v) for k, v in got.values.items()} == {
        k: _bits(v) for k, v in served.values.items()
    }
    assert got.statuses == served.statuses
    assert got.event_timestamps == served.event_timestamps
    assert {k: _bits(v) for k, v in got.on_demand.items()} == {
        k: _bits(v) for k, v in served.on_demand.items()
    }


def test_a_logged_vector_comes_back_bit_for_bit(config):
    entry = _entry(1)

    feature_log_write(config, [entry])

    frame = logged_features(config)
    assert len(frame) == 1
    row = frame.iloc[0]
    _assert_same(_logged(row), entry.vector)
    assert row["event_id"] == entry.event_id
    assert row["payment_id"] == "p-1"
    assert row["request_time"].to_pydatetime() == entry.request_time
    assert (row["model_version"], row["role"]) == ("fraud-lgbm-test", "champion")
    assert {k: row[k] for k in ("card_id", "rider_id", "zone_id", "driver_id", "platform_id")} == {
        "card_id": "c-1",
        "rider_id": "r-1",
        "zone_id": "Z-1",
        "driver_id": "",  # the key served for a payment without a driver
        "platform_id": "all",
    }
    # Exact types, as training sets have them.
    assert {str(frame[n].dtype) for n in NAMES if DTYPES[n] == "int64"} == {"Int64"}
    assert {str(frame[n].dtype) for n in NAMES if DTYPES[n] == "float64"} == {"Float64"}


def test_the_log_file_follows_feasts_logging_schema(config):
    feature_log_write(config, [_entry(1), _entry(2)])

    files = list(log_dir(config).glob("*.parquet"))
    assert len(files) == 1
    table = pq.read_table(files[0])
    assert table.num_rows == 2
    assert table.column("__request_id").to_pylist() == [_entry(1).event_id, _entry(2).event_id]
    assert table.schema.field("card_velocity__card_payments_1h").type == "int64"
    assert table.schema.field("card_velocity__card_payments_1h__status").type == "int32"
    # FieldStatus numbers: PRESENT 1, NOT_FOUND 3.
    statuses = table.column("card_velocity__card_payments_10m__status").to_pylist()
    assert statuses == [
        {"PRESENT": 1, "NOT_FOUND": 3, "OUTSIDE_MAX_AGE": 4}[_vector(i).statuses[NAMES[0]]]
        for i in (1, 2)
    ]
    assert {"__log_timestamp", "__log_date", "on_demand__hour_of_day", "__model_version"} <= set(
        table.column_names
    )


def test_a_batch_of_many_is_one_file_and_every_row_comes_back(config):
    entries = [_entry(i) for i in range(500)]

    feature_log_write(config, entries[:300])
    feature_log_write(config, entries[300:])

    assert len(list(log_dir(config).glob("*.parquet"))) == 2
    frame = logged_features(config)
    assert frame["event_id"].tolist() == [e.event_id for e in entries]
    for (_, row), entry in zip(frame.iterrows(), entries, strict=True):
        _assert_same(_logged(row), entry.vector)


def test_an_event_logged_twice_comes_back_once_with_its_latest_log(config):
    first = _entry(1, model_version="fraud-lgbm-old")
    replayed = _entry(1, model_version="fraud-lgbm-new", vector=_vector(2))

    feature_log_write(config, [first, _entry(2)])
    feature_log_write(config, [replayed])

    frame = logged_features(config)
    assert frame["event_id"].tolist() == [first.event_id, _entry(2).event_id]
    assert frame["model_version"].tolist() == ["fraud-lgbm-new", "fraud-lgbm-test"]
    _assert_same(_logged(frame.iloc[0]), replayed.vector)


def test_a_torn_file_is_skipped_and_an_empty_batch_or_a_warm_up_writes_nothing(config):
    feature_log_warm(config)
    feature_log_write(config, [])
    assert logged_features(config).empty
    assert not log_dir(config).exists() or list(log_dir(config).iterdir()) == []

    feature_log_write(config, [_entry(1)])
    (log_dir(config) / "torn-0.parquet").write_bytes(b"PAR1\x00\x01")

    assert logged_features(config)["event_id"].tolist() == [_entry(1).event_id]


def test_vectors_served_by_the_online_store_are_logged_as_served(config):
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    feature_store(config).write_to_online_store(
        "card_velocity",
        pd.DataFrame(
            [
                {
                    "card_id": "c1",
                    "event_timestamp": at,
                    "created_timestamp": at,
                    **{n: None for n in NAMES[:9]},
                    "card_payments_1h": 3,
                    "card_added_at": at.timestamp() - 0.1,
                }
            ]
        ),
    )
    requests = [
        {**_request(1), "card_id": "c1", "occurred_at": at.isoformat(), "distance_km": 2.5},
        _request(2),
    ]
    served = online_vector(config, requests)
    entries = [
        LoggedVector(str(uuid.UUID(int=i)), at, "v1", "champion", vector, request)
        for i, (vector, request) in enumerate(zip(served, requests, strict=True))
    ]

    feature_log_write(config, entries)

    frame = logged_features(config)
    for (_, row), vector in zip(frame.iterrows(), served, strict=True):
        _assert_same(_logged(row), vector)
    assert frame.loc[0, "card_payments_1h"] == 3
    assert frame.loc[0, "card_payments_1h__status"] == "PRESENT"
    assert frame.loc[1, "card_payments_1h__status"] == "NOT_FOUND"
    assert math.isclose(frame.loc[0, "card_added_at"], at.timestamp() - 0.1, rel_tol=0)


def _item(entry: LoggedVector) -> LogItem:
    record = vector_record(
        entry.vector,
        service=FRAUD_SCORING_V1.name,
        request=entry.request,
        request_time=entry.request_time,
    )
    return LogItem(entry.event_id, entry.model_version, entry.role, json.dumps(record))


def test_the_items_table_is_the_table_of_their_entries(config):
    entries = [_entry(i) for i in range(7)]
    # A degraded vector: nothing served.
    entries.append(_entry(7, vector=unserved_vector(_request(7), FRAUD_SCORING_V1.name)))
    items = [_item(e) for e in entries]
    stamp = AT + timedelta(hours=1)

    by_items = log_items_table(config, items, stamp=stamp)

    assert by_items.equals(log_table(config, [i.entry() for i in items], stamp=stamp))
    assert by_items.equals(log_table(config, entries, stamp=stamp))
    assert by_items.num_rows == 8
