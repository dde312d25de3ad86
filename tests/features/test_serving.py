"""Online vectors: one read for many requests, stored values with their status and time, the
on-demand features beside; unknown entities are NOT_FOUND, never an error."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.definitions import FRAUD_SCORING_V1, VIEWS_BY_NAME
from features.ondemand import on_demand
from features.serving import OUTSIDE_TTL, entity_row, online_vector
from features.store import feature_store
from features.training import service_features, training_set
from tests.features.stores import ONLINE_STORES, applied_config

AT = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
NAMES = [name for name, _ in service_features(FRAUD_SCORING_V1)]


@pytest.fixture(params=ONLINE_STORES)
def config(request, tmp_path):
    yield from applied_config(request, tmp_path)


def _write(config, view: str, keys: dict, values: dict, at: datetime = AT) -> None:
    declared = VIEWS_BY_NAME[view]
    row = {**keys, "event_timestamp": at, "created_timestamp": at}
    row.update({f.name: values.get(f.name) for f in declared.features})
    feature_store(config).write_to_online_store(view, pd.DataFrame([row]))


def _request(**overrides) -> dict:
    return {
        "card_id": "c1",
        "rider_id": "r1",
        "pickup_zone": "Z-1",
        "amount_cents": 2400,
        "distance_km": 3.0,
        "occurred_at": (AT + timedelta(minutes=1)).isoformat(),
        **overrides,
    }


def test_served_vectors_hold_values_statuses_times_and_on_demand_features(config):
    _write(
        config,
        "card_velocity",
        {"card_id": "c1"},
        {"card_payments_1h": 2, "card_added_at": AT.timestamp() - 600},
    )
    _write(config, "rider_profile", {"rider_id": "r1"}, {"rider_avg_fare_cents_30d": 1600.0})
    _write(config, "zone_profile", {"zone_id": "Z-1"}, {"zone_median_fare_per_km_30d": 200.0})
    _write(config, "driver_activity", {"driver_id": "d1"}, {"driver_trips_24h": 7})
    _write(config, "platform_fraud", {"platform_id": "all"}, {"platform_chargebacks_24h": 3})

    known, unknown, with_driver = online_vector(
        config,
        [
            _request(),
            _request(card_id="c-new", rider_id="r-new", pickup_zone="Z-new"),
            _request(driver_id="d1"),
        ],
    )

    assert list(known.values) == NAMES
    present = {
        "card_velocity": ["card_id"],
        "rider_profile": ["rider_id"],
        "zone_profile": ["zone_id"],
        "platform_fraud": ["platform_id"],
    }
    present_names = {f.name for v in present for f in VIEWS_BY_NAME[v].features}
    assert {n for n, s in known.statuses.items() if s == "PRESENT"} == present_names
    assert {n for n, s in known.statuses.items() if s == "NOT_FOUND"} == set(NAMES) - present_names
    assert known.values["card_payments_1h"] == 2
    assert known.values["card_payments_24h"] is None  # written as null: present, no value
    assert known.values["card_added_at"] == AT.timestamp() - 600
    assert known.values["rider_avg_fare_cents_30d"] == 1600.0
    assert known.values["platform_chargebacks_24h"] == 3
    assert known.values["driver_trips_24h"] is None  # the payment names no driver
    assert {known.event_timestamps[n] for n in present_names} == {AT}
    assert {known.event_timestamps[n] for n in set(NAMES) - present_names} == {None}
    assert known.on_demand == {
        "amount_to_rider_avg_fare": 1.5,
        "fare_per_km_to_zone_median": 4.0,
        "hour_of_day": (AT + timedelta(minutes=1)).hour,
        "is_new_card": 1,
        "minutes_since_signup": None,
    }
    assert known.on_demand == on_demand(_request(), known.values, FRAUD_SCORING_V1.on_demand)
    assert known.features == {**known.values, **known.on_demand}

    platform = {f.name for f in VIEWS_BY_NAME["platform_fraud"].features}
    assert {n for n, s in unknown.statuses.items() if s == "PRESENT"} == platform
    assert {n: v for n, v in unknown.values.items() if n not in platform} == {
        n: None for n in NAMES if n not in platform
    }
    assert unknown.on_demand["amount_to_rider_avg_fare"] is None
    assert unknown.on_demand["is_new_card"] is None  # never seen added: unknown, not new

    assert with_driver.values["driver_trips_24h"] == 7
    assert with_driver.statuses["driver_trips_24h"] == "PRESENT"


def test_a_micro_batch_keeps_the_order_of_its_requests(config):
    for i in range(5):
        _write(config, "card_velocity", {"card_id": f"c{i}"}, {"card_payments_1h": i})
    requests = [_request(card_id=f"c{i}") for i in (3, 9, 0, 4, 3)]

    served = online_vector(config, requests)

    assert [v.values["card_payments_1h"] for v in served] == [3, None, 0, 4, 3]
    assert [v.statuses["card_payments_1h"] for v in served] == [
        "PRESENT",
        "NOT_FOUND",
        "PRESENT",
        "PRESENT",
        "PRESENT",
    ]
    assert online_vector(config, []) == []


def test_the_entity_row_of_a_payment_fills_every_key():
    keys = ["card_id", "rider_id", "driver_id", "zone_id", "platform_id"]
    assert entity_row(_request(), keys) == {
        "card_id": "c1",
        "rider_id": "r1",
        "driver_id": "",
        "zone_id": "Z-1",
        "platform_id": "all",
    }


def test_the_device_and_address_keys_come_from_the_payments_context():
    keys = ["device_id", "ip_address"]
    request = _request(context={"device_id": "dev-1", "ip": "10.0.0.7"})
    assert entity_row(request, keys) == {"device_id": "dev-1", "ip_address": "10.0.0.7"}
    assert entity_row(_request(), keys) == {"device_id": "", "ip_address": ""}


def _feast_reference(config, requests: list[dict]) -> list[tuple[dict, dict, dict]]:
    """Each request's (values, statuses, event times) as ``FeatureStore.get_online_features``
    answers for the whole service, an entity Redis holds nothing for read as NOT_FOUND."""
    from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

    from features.feature_repo.services import feature_services
    from features.training import service_join_keys

    keys = service_join_keys(FRAUD_SCORING_V1)
    response = (
        feature_store(config)
        .get_online_features(
            features=feature_services(config)["fraud_scoring_v1"],
            entity_rows=[entity_row(r, keys) for r in requests],
        )
        .proto
    )
    out = [({}, {}, {}) for _ in requests]
    for name, column in zip(response.metadata.feature_names.val, response.results, strict=True):
        if name not in NAMES:
            continue
        for i, (value, status, stamp) in enumerate(
            zip(column.values, column.statuses, column.event_timestamps, strict=True)
        ):
            values, statuses, stamps = out[i]
            held = (stamp.seconds, stamp.nanos) != (0, 0)
            kind = value.WhichOneof("val")
            values[name] = getattr(value, kind) if held and kind else None
            statuses[name] = FieldStatus.Name(status) if held else "NOT_FOUND"
            stamps[name] = stamp.ToDatetime(tzinfo=UTC) if held else None
    return out


def test_the_served_vectors_equal_feasts_own_get_online_features(config):
    # Many entities per view, some never written, nulls, several event times; the requests
    # repeat cards and share zones as a micro-batch of payments does.
    for i in range(12):
        at = AT - timedelta(minutes=i, microseconds=1000 * i)
        _write(
            config,
            "card_velocity",
            {"card_id": f"c{i}"},
            {"card_payments_1h": i, "card_amount_cents_1h": None if i % 3 else 100.0 * i},
            at,
        )
        _write(config, "rider_activity", {"rider_id": f"r{i}"}, {"rider_trips_1h": i % 4}, at)
        if i % 2:
            # A second view of the same entity, written at another time: on Redis both live in
            # the entity's one hash and are read by one command.
            later = at + timedelta(seconds=30)
            _write(config, "card_profile", {"card_id": f"c{i}"}, {"card_age_days": 2.5 * i}, later)
            _write(
                config, "rider_profile", {"rider_id": f"r{i}"}, {"rider_lifetime_trips": i}, later
            )
        _write(config, "zone_fraud", {"zone_id": f"Z-{i % 4}"}, {"zone_chargebacks_1h": i}, at)
        _write(
            config,
            "driver_rider_pair",
            {"driver_id": f"d{i % 3}", "rider_id": f"r{i}"},
            {"pair_trips_7d": i},
            at,
        )
    _write(config, "platform_fraud", {"platform_id": "all"}, {"platform_chargebacks_1h": 5})
    requests = [
        _request(
            card_id=f"c{(i * 7) % 16}",
            rider_id=f"r{i % 14}",
            pickup_zone=f"Z-{i % 5}",
            **({"driver_id": f"d{i % 4}"} if i % 2 else {}),
        )
        for i in range(40)
    ]

    served = online_vector(config, requests)

    reference = _feast_reference(config, requests)
    assert [(v.values, v.statuses, v.event_timestamps) for v in served] == reference
    assert sum(v.statuses["card_payments_1h"] == "PRESENT" for v in served) > 10
    assert any(v.statuses["pair_trips_7d"] == "PRESENT" for v in served)
    assert any(
        v.statuses["card_age_days"] == "PRESENT" and v.statuses["card_payments_1h"] == "PRESENT"
        for v in served
    )


def test_decoded_values_are_kept_only_for_scalars_and_within_the_bound(monkeypatch):
    from feast.protos.feast.types.Value_pb2 import DoubleList
    from feast.protos.feast.types.Value_pb2 import Value as ValueProto

    from features import serving

    monkeypatch.setattr(serving, "_DECODED", {})
    monkeypatch.setattr(serving, "_DECODED_MAX", 2)
    count, share = ValueProto(int64_val=7), ValueProto(double_val=0.1 + 0.2)
    listed = ValueProto(double_list_val=DoubleList(val=[1.0, 2.5]))

    assert serving._value(count.SerializeToString()) == 7
    assert serving._value(count.SerializeToString()) == 7
    assert serving._value(share.SerializeToString()) == 0.1 + 0.2
    first = serving._value(listed.SerializeToString())
    assert first == [1.0, 2.5]
    # A list is mutable: each read gets its own.
    assert serving._value(listed.SerializeToString()) is not first
    assert set(serving._DECODED.values()) == {7, 0.1 + 0.2}
    serving._value(ValueProto(string_val="Z-1-1").SerializeToString())
    assert list(serving._DECODED.values()) == ["Z-1-1"]


def test_a_row_older_than_its_views_ttl_is_served_as_the_training_join_reads_it(config):
    ttl = VIEWS_BY_NAME["card_velocity"].ttl
    _write(config, "card_velocity", {"card_id": "c1"}, {"card_payments_1h": 3}, AT)
    within = _request(occurred_at=(AT + ttl).isoformat())
    past = _request(occurred_at=(AT + ttl + timedelta(seconds=1)).isoformat())

    kept, dropped = online_vector(config, [within, past])

    assert (kept.values["card_payments_1h"], kept.statuses["card_payments_1h"]) == (3, "PRESENT")
    assert dropped.values["card_payments_1h"] is None
    assert dropped.statuses["card_payments_1h"] == OUTSIDE_TTL
    assert dropped.event_timestamps["card_payments_1h"] is None
    # The view's other features go with its row; other views are untouched by it.
    assert dropped.statuses["card_amount_cents_24h"] == OUTSIDE_TTL
    assert dropped.statuses["rider_trips_1h"] == "NOT_FOUND"
    # on-demand features read the value as served: a card whose row aged out reads as
    # unknown, not as new.
    assert dropped.on_demand["is_new_card"] is None


def test_the_training_join_drops_the_same_card_past_the_ttl(config, tmp_path):
    """A stream view in a training set is evaluated at the instant over the event history:
    within the ttl of the card's last payment its windows have slid past it (0 in the last
    hour and the last 24 hours), past the ttl the view is null."""
    view = VIEWS_BY_NAME["card_velocity"]
    events = tmp_path / "history" / "events"
    events.mkdir(parents=True)
    payload = {"card_id": "c1", "rider_id": "r1", "amount_cents": 700, "context": {}}
    pq.write_table(
        pa.table(
            {
                "event_id": ["e1"],
                "occurred_at": pa.array([AT], pa.timestamp("us", tz="UTC")),
                "payload": [json.dumps(payload)],
            }
        ),
        events / "payments.authorized.v1.parquet",
    )
    spine = pd.DataFrame(
        {
            "event_timestamp": [AT, AT + view.ttl, AT + view.ttl + timedelta(seconds=1)],
            "card_id": ["c1"] * 3,
            "rider_id": ["r1"] * 3,
            "zone_id": ["Z-1"] * 3,
        }
    )

    joined = training_set(config, spine, history=tmp_path / "history")

    assert joined["card_payments_1h"].tolist()[:2] == [1, 0]
    assert joined["card_amount_cents_24h"].tolist()[:2] == [700, 0]
    assert pd.isna(joined["card_payments_1h"].tolist()[2])
    assert pd.isna(joined["card_amount_cents_24h"].tolist()[2])


def test_a_batch_view_read_during_a_publication_is_marked_stale(config, tmp_path):
    # The mark is read with the rows (on Redis in the same script, else first): a vector is
    # exact only when no publication of an instant at or before its payment is pending.
    from events.backends.embedded import EmbeddedBus
    from features.definitions import STREAM_VIEWS
    from features.publication import publication_begin, publication_end
    from features.state import SqliteState
    from features.stream_serving import EXACT, STALE, StreamServing

    _write(config, "rider_profile", {"rider_id": "r1"}, {"rider_avg_fare_cents_30d": 1600.0})
    stream = StreamServing(
        state=SqliteState(tmp_path / "state.sqlite3", lateness_us=60_000_000),
        bus=EmbeddedBus(tmp_path / "bus.sqlite3"),
        group="stream-features-test",
        views=STREAM_VIEWS,
    )
    request = _request()

    def marked() -> str:
        (vector,) = online_vector(config, [request], stream=stream)
        assert vector.values["rider_avg_fare_cents_30d"] == 1600.0
        return vector.consistency

    before = marked()
    at = publication_begin(config, at_us=int(AT.timestamp() * 1_000_000))
    during = marked()
    publication_end(config, at)
    after = marked()
    stream.close()

    assert (before, during, after) == (EXACT, STALE, EXACT)
