"""One definition, two engines, no skew: over one simulated day, the stream processor's rows equal
the DuckDB backfill's, the consistency report finds no mismatch between what is served and what
is recomputed offline, and a training set built from either engine's rows is the same."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from events.backends.embedded import EmbeddedBus
from events.bus import Message
from events.contracts import PaymentAuthorized
from features.consistency import compare, consistency_run, last_report, online_sample
from features.definitions import BATCH_VIEWS, FRAUD_CAPTURE_V1, PLATFORM_KEY, STREAM_VIEWS
from features.offline import backfill, history_files, recompute_as_of, snapshots_catch_up
from features.processor import StreamProcessor, state_from_config
from features.training import training_set
from features.windows import moment
from tests.features.simulated import simulated_day
from tests.features.streams import applied_config, offline_rows

# Replays the archive and builds training sets: fails alone if it grows
# (tests/memory_ceiling.py).
pytestmark = pytest.mark.memory_ceiling(2)

NAMESPACE = "day"


@pytest.fixture(scope="module")
def day(tmp_path_factory) -> Path:
    return simulated_day(tmp_path_factory.mktemp("history"))


def stream_messages(history: Path) -> list[Message]:
    """Every event of ``history`` as one partition per topic delivers it: in event-time order."""
    events = []
    for topic, paths in history_files(history).items():
        for path in paths:
            table = pq.read_table(path, columns=["occurred_at", "key", "payload"])
            for occurred, key, payload in zip(
                table.column("occurred_at").cast("int64").to_pylist(),
                table.column("key").to_pylist(),
                table.column("payload").to_pylist(),
                strict=True,
            ):
                events.append((occurred, topic, key, payload))
    events.sort(key=lambda e: e[0])
    offsets: dict[str, int] = {}
    messages = []
    for _, topic, key, payload in events:
        offset = offsets.get(topic, 0)
        offsets[topic] = offset + 1
        messages.append(Message(f"{NAMESPACE}.{topic}", 0, offset, key, payload.encode()))
    return messages


@pytest.fixture(scope="module")
def streamed(day, tmp_path_factory):
    """The day through the stream processor, in micro-batches of 500 (SQLite state and store)."""
    config = applied_config(tmp_path_factory.mktemp("streamed"))
    processor = StreamProcessor(
        bus=EmbeddedBus(config.data_dir / "bus.sqlite3"),
        config=config,
        state=state_from_config(config),
        namespace=NAMESPACE,
    )
    messages = stream_messages(day)
    for start in range(0, len(messages), 500):
        result = processor.process_batch(messages[start : start + 500])
        assert result.dead_letters == []
    return config, messages


def test_the_stream_processor_and_the_duckdb_backfill_compute_the_same_rows(
    day, streamed, tmp_path
):
    config, _ = streamed
    batch = applied_config(tmp_path)
    backfill(batch, history=day, views=STREAM_VIEWS)
    streamed_rows, backfilled_rows = offline_rows(config), offline_rows(batch)
    # Every stream view got rows from the day, fraud views included: the comparison is not vacuous.
    assert sorted(streamed_rows) == sorted(v.name for v in STREAM_VIEWS)
    assert all(len(rows) > 0 for rows in streamed_rows.values())
    for view in STREAM_VIEWS:
        assert streamed_rows[view.name] == backfilled_rows[view.name], view.name


def test_the_archived_events_replay_to_the_same_rows(streamed, tmp_path):
    """The processor's own archive (offline history) is a complete event history: a backfill
    over it reproduces what the processor computed."""
    config, messages = streamed
    batch = applied_config(tmp_path)
    backfill(batch, history=config.offline_dir, views=STREAM_VIEWS)
    assert offline_rows(batch) == offline_rows(config)
    archived = sum(pq.read_metadata(p).num_rows for p in config.offline_dir.glob("events/*/*"))
    assert archived == len(messages)


def test_served_features_are_consistent_with_the_offline_recomputation(streamed):
    config, _ = streamed
    report = consistency_run(config, per_view=40, seed=3)
    assert report.sampled > 10 * len(STREAM_VIEWS)
    assert report.mismatches == 0, report.examples
    assert {f.view for f in report.features} == {v.name for v in STREAM_VIEWS}
    assert all(f.mismatch_rate == 0 and f.missing_rate == 0 for f in report.features)
    assert last_report(config).sampled == report.sampled


def test_the_consistency_report_counts_a_served_value_that_differs(streamed):
    config, _ = streamed
    served = online_sample(config, keys={"card_velocity": [_a_card(config)]})
    tampered = [replace(served[0], values={**served[0].values, "card_payments_24h": 999})]
    offline = recompute_as_of(config, [(s.view, s.key, s.at) for s in tampered])
    report = compare(tampered, offline)
    by_name = {f.name: f for f in report.features}
    assert by_name["card_payments_24h"].mismatches == 1
    assert by_name["card_payments_24h"].mean_abs_delta == 999 - offline[0]["card_payments_24h"]
    assert by_name["card_payments_1h"].mismatches == 0


def _a_card(config) -> tuple[str]:
    rows = offline_rows(config, [v for v in STREAM_VIEWS if v.name == "card_velocity"])
    return max(rows["card_velocity"])[0]


def test_training_sets_from_the_processors_archive_and_the_history_are_identical(
    day, streamed, tmp_path
):
    """The stream processor archives every event it applied; a training set's stream views
    evaluated over that archive equal those over the simulator's own history."""
    config, _ = streamed
    batch = applied_config(tmp_path)
    spine = _payments_spine(day, limit=300)
    stream_names = [f.name for v in STREAM_VIEWS for f in v.features]
    every = FRAUD_CAPTURE_V1.name  # every view
    from_stream = training_set(config, spine, every)[stream_names]
    from_batch = training_set(batch, spine, every, history=day)[stream_names]
    assert len(from_stream) == len(spine)
    assert from_stream["card_payments_24h"].notna().sum() > 0
    pd.testing.assert_frame_equal(from_stream, from_batch)


def _payments_spine(day: Path, limit: int | None = None) -> pd.DataFrame:
    payments = pq.read_table(Path(day) / "events" / f"{PaymentAuthorized.topic}.parquet")
    payloads = payments.column("payload").to_pylist()
    return pd.DataFrame(
        [
            {
                "card_id": p["card_id"],
                "rider_id": p["rider_id"],
                "zone_id": p["pickup_zone"],
                "driver_id": None,
                "platform_id": PLATFORM_KEY,
                "device_id": p["context"]["device_id"],
                "ip_address": p["context"]["ip"],
                "event_timestamp": pd.Timestamp(json_time(p["occurred_at"])),
            }
            for p in map(json.loads, payloads[:limit])
        ]
    )


def test_a_day_replayed_through_the_stream_gets_its_batch_snapshots_once(day, streamed, tmp_path):
    """The day reached the offline store through the stream only: no beat ran over it, so it has
    no batch snapshot. The catch-up writes those the hourly beat would have, over the
    processor's archive, equal to a backfill's at the same instants over the simulator's own
    history; a second catch-up writes nothing."""
    config, _ = streamed
    archive = config.offline_dir / "events"
    replayed, reference = applied_config(tmp_path / "replayed"), applied_config(tmp_path / "ref")
    batch_names = [f.name for v in BATCH_VIEWS for f in v.features]
    spine = _payments_spine(day)

    every = FRAUD_CAPTURE_V1.name  # every view
    before = training_set(replayed, spine, every, history=archive)[batch_names]
    first = snapshots_catch_up(replayed, every=timedelta(hours=1), history=archive)
    again = snapshots_catch_up(replayed, every=timedelta(hours=1), history=archive)
    after = training_set(replayed, spine, every, history=archive)[batch_names]

    assert before.isna().all().all()
    assert len(first.snapshots) >= 20  # a day, hourly, less the first and the lateness
    assert {view.name for view in BATCH_VIEWS} <= {p.parent.name for p in first.files} | {
        name for name, n in first.rows.items() if n == 0
    }
    # Every batch view the payments name has values now (a driver is named by no payment).
    for view in BATCH_VIEWS:
        if view.name not in ("driver_profile", "driver_risk"):
            assert after[[f.name for f in view.features]].notna().any().any(), view.name
    assert (again.files, again.snapshots, sum(again.rows.values())) == ([], [], 0)
    backfill(
        reference,
        history=day,
        views=BATCH_VIEWS,
        snapshots=[moment(at) for at in first.snapshots],
    )
    pd.testing.assert_frame_equal(
        after, training_set(reference, spine, every, history=day)[batch_names]
    )


def json_time(text: str) -> str:
    return text.replace("Z", "+00:00")
