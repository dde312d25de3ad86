"""The DuckDB engine computes exactly what the declarations say: equal to a brute-force reference
written here, and to ``features.windows.evaluate``, value for value and type for type."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.management import call_command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import features.offline.history
from features.definitions import (
    BATCH_VIEWS,
    DRIVER_ACTIVITY,
    STREAM_VIEWS,
    VIEWS,
    VIEWS_BY_NAME,
    View,
)
from features.offline import (
    backfill,
    history_files,
    history_load,
    key_columns,
    recompute_as_of,
    rows_load,
    snapshot_instants,
    table_name,
    view_keys,
)
from features.repo import EMPTY_FILE, offline_dirs_create
from features.store import FeatureConfig
from features.tables import view_schema
from features.windows import Row, evaluate, to_us
from tests.features.probes import (
    PAIR_PROBE,
    PROBE,
    by_key,
    pair_rows,
    probe_rows,
    reference,
    typed,
    unique,
)
from tests.features.simulated import CONFIG, reference_rows, simulated_day


def check_stream(view: View, rows: list[Row]) -> None:
    kept = unique(rows)
    history = rows_load(rows, views=[view])
    out = history.stream_rows(view).to_pylist()
    # One output row per distinct (key, event, kind) row, ties at the same instant included.
    assert sorted((tuple(r[k] for k in key_columns(view)), r["event_id"]) for r in out) == sorted(
        (row.key, row.event_id) for row in kept
    )
    grouped = by_key(kept)
    for r in out:
        key = tuple(r[k] for k in key_columns(view))
        got = typed({f.name: r[f.name] for f in view.features})
        assert got == typed(reference(view, grouped[key], r["ts"])), (key, r["ts"])
        assert got == typed(evaluate(view, grouped[key], r["ts"])), (key, r["ts"])


def check_snapshot(view: View, rows: list[Row], at: int) -> None:
    kept = unique(rows)
    history = rows_load(rows, views=[view])
    out = history.snapshot(view, at_us=at).to_pylist()
    grouped = by_key(kept)
    assert [tuple(r[k] for k in key_columns(view)) for r in out] == sorted(
        key for key, mine in grouped.items() if any(row.ts <= at for row in mine)
    )
    for r in out:
        key = tuple(r[k] for k in key_columns(view))
        assert r["ts"] == at
        got = typed({f.name: r[f.name] for f in view.features})
        assert got == typed(reference(view, grouped[key], at)), key
        assert got == typed(evaluate(view, grouped[key], at)), key


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=probe_rows())
def test_stream_values_equal_the_reference_at_every_row(rows):
    check_stream(PROBE, rows)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=probe_rows(), at=st.integers(-1, 45))
def test_snapshot_values_equal_the_reference_for_every_entity(rows, at):
    check_snapshot(PROBE, rows, at)


@settings(max_examples=50, deadline=None)
@given(rows=pair_rows(), at=st.integers(0, 22))
def test_a_two_entity_key_partitions_by_both(rows, at):
    check_stream(PAIR_PROBE, rows)
    check_snapshot(PAIR_PROBE, rows, at)


@st.composite
def driver_rows(draw) -> list[Row]:
    """The declared driver_activity view: counts, distinct riders and the cancellation ratio
    over 1-day and 7-day windows, with timestamps a few hours apart."""
    hour = 3_600_000_000
    rows = []
    for i in range(draw(st.integers(0, 30))):
        kind = draw(st.sampled_from(["trip", "assignment", "cancel"]))
        fields = {"rider_id": draw(st.sampled_from(["r1", "r2", "r3"]))} if kind == "trip" else {}
        ts = draw(st.integers(0, 24 * 10)) * hour
        rows.append(
            Row(
                "driver_activity", (draw(st.sampled_from(["d1", "d2"])),), f"e{i}", ts, kind, fields
            )
        )
    return draw(st.permutations(rows))


@settings(max_examples=60, deadline=None)
@given(rows=driver_rows())
def test_a_declared_view_equals_the_reference(rows):
    check_stream(DRIVER_ACTIVITY, rows)
    check_snapshot(DRIVER_ACTIVITY, rows, 5 * 24 * 3_600_000_000)


def test_a_row_repeated_in_the_history_counts_once():
    row = Row("probe", ("k1",), "e1", 10, "a", {"n": 5, "s": "p", "x": 1.5})
    history = rows_load(
        [row, row, Row("probe", ("k1",), "e2", 12, "b", {"x": None})], views=[PROBE]
    )
    out = history.stream_rows(PROBE).to_pylist()
    assert [(r["event_id"], r["count_ab"], r["sum_n"], r["last_x"]) for r in out] == [
        ("e1", 1, 5, 1.5),
        ("e2", 2, 5, None),
    ]


def test_rows_loaded_a_chunk_at_a_time_equal_rows_loaded_at_once(monkeypatch):
    """Each chunk types its fields by its own values; the table types them as one conversion
    of every value would (integers and floats as floats, text and others as text)."""
    fields = [
        {"n": 1, "s": "p", "x": None},
        {"n": 2, "s": "q", "x": None},
        {"n": None, "s": 3, "x": 1},
        {"n": 4, "s": "r", "x": 2.5},
        {"n": 5, "s": True, "x": None},
    ]
    rows = [Row("probe", ("k1",), f"e{i}", 10 + i, "a", f) for i, f in enumerate(fields)]
    rows.append(replace(rows[1], fields={"n": 99, "s": "z", "x": 7.5}))  # a replay: the first stays

    def contents(history):
        sql = f"SELECT * FROM {table_name(PROBE)} ORDER BY ts"  # noqa: S608
        table = history.con.sql(sql).to_arrow_table()
        return table.schema, table.to_pylist(), history.float_fields, history.rows

    whole = contents(rows_load(rows, views=[PROBE]))
    monkeypatch.setattr(features.offline.history, "CHUNK_ROWS", 2)
    assert contents(rows_load(rows, views=[PROBE])) == whole
    assert [(r["f_s"], r["f_x"]) for r in whole[1]] == [
        ("p", None), ("q", None), ("3", 1.0), ("r", 2.5), ("True", None)
    ]  # fmt: skip


def test_the_median_of_an_even_count_is_the_mean_of_the_middle_two_as_python_computes_it():
    rows = [
        Row("probe", ("k1",), "e1", 1, "a", {"x": 0.1}),
        Row("probe", ("k1",), "e2", 2, "b", {"x": 0.7}),
    ]
    (snapshot,) = rows_load(rows, views=[PROBE]).snapshot(PROBE, at_us=2).to_pylist()
    assert snapshot["median_x_9"] == (0.1 + 0.7) / 2 == 0.39999999999999997


def test_an_empty_history_gives_no_rows():
    history = rows_load([], views=[PROBE])
    assert history.stream_rows(PROBE).num_rows == 0
    assert history.snapshot(PROBE, at_us=10).num_rows == 0
    assert history.first_us is None


# --- one simulated day ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def day(tmp_path_factory) -> Path:
    return simulated_day(tmp_path_factory.mktemp("history"))


@pytest.fixture(scope="module")
def day_rows(day) -> dict:
    return reference_rows(day)


def test_every_stream_row_of_a_simulated_day_equals_windows_evaluate(day, day_rows):
    history = history_load(day)
    for view in STREAM_VIEWS:
        out = history.stream_rows(view).to_pylist()
        expected = sorted(
            (key, row.event_id)
            for (name, key), rows in day_rows.items()
            if name == view.name
            for row in rows
        )
        assert sorted((tuple(r[k] for k in key_columns(view)), r["event_id"]) for r in out) == (
            expected
        ), view.name
        assert out, f"{view.name} has no rows in the simulated day"
        for r in out:
            key = tuple(r[k] for k in key_columns(view))
            got = typed({f.name: r[f.name] for f in view.features})
            assert got == typed(evaluate(view, day_rows[(view.name, key)], r["ts"])), (
                view.name,
                key,
            )


def test_batch_snapshots_of_a_simulated_day_equal_windows_evaluate(day, day_rows):
    history = history_load(day)
    for hours in (6, 24):
        at = to_us(CONFIG.start + timedelta(hours=hours))
        for view in BATCH_VIEWS:
            out = history.snapshot(view, at_us=at).to_pylist()
            assert out, view.name
            for r in out:
                key = tuple(r[k] for k in key_columns(view))
                got = typed({f.name: r[f.name] for f in view.features})
                assert got == typed(evaluate(view, day_rows[(view.name, key)], at)), key


def test_the_archive_layout_with_a_replayed_file_gives_the_same_rows(day, tmp_path):
    """The stream processor's archive (<topic>/*.parquet, an event archived twice after a
    replay) normalises to the same rows as the simulator's files."""
    archive = tmp_path / "offline" / "events"
    for topic, (path,) in history_files(day).items():
        table = pq.read_table(path)
        (archive / topic).mkdir(parents=True)
        pq.write_table(table, archive / topic / "part-1.parquet")
        pq.write_table(table.slice(0, 3), archive / topic / "part-2-replayed.parquet")
    from_day, from_archive = history_load(day), history_load(tmp_path)
    assert from_archive.rows == from_day.rows
    read = {s.topic for v in VIEWS for s in v.sources}
    replayed = sum(
        min(3, pq.ParquetFile(p).metadata.num_rows)
        for topic, (p,) in history_files(day).items()
        if topic in read
    )
    assert from_archive.events == from_day.events + replayed
    for view in VIEWS:
        if view.mode == "stream":
            assert from_archive.stream_rows(view) == from_day.stream_rows(view), view.name


def _config(tmp_path: Path) -> FeatureConfig:
    return FeatureConfig(
        project="backfill",
        registry_url=f"sqlite:///{tmp_path}/registry.db",
        online="sqlite",
        data_dir=tmp_path / "features",
    )


def test_backfill_appends_one_file_per_view_and_run(day, tmp_path):
    config = _config(tmp_path)
    offline_dirs_create(config)
    history = history_load(day)
    first = backfill(config, history=day, snapshot_every=timedelta(hours=6))
    second = backfill(config, history=day, snapshot_every=timedelta(hours=6))

    assert first.snapshots == [to_us(CONFIG.start + timedelta(hours=h)) for h in (6, 12, 18, 24)]
    for view in VIEWS:
        files = sorted(p.name for p in config.view_dir(view.name).glob("*.parquet"))
        assert len(files) == 3, view.name  # the empty file and one per run
        assert EMPTY_FILE in files
        tables = [
            pq.read_table(p) for p in first.files + second.files if p.parent.name == view.name
        ]
        assert [t.schema for t in tables] == [view_schema(view)] * 2
        first_rows, second_rows = (t.drop_columns(["created_timestamp"]) for t in tables)
        assert first_rows == second_rows
        assert first.rows[view.name] == second.rows[view.name] == tables[0].num_rows
        if view.mode == "stream":
            expected = history.stream_rows(view)
        else:
            expected = pa.concat_tables(
                [history.snapshot(view, at_us=at) for at in first.snapshots]
            )
        keys = view.join_keys
        assert tables[0].select([*keys, *[f.name for f in view.features]]).to_pylist() == [
            {
                **dict(zip(keys, (r[k] for k in key_columns(view)), strict=True)),
                **{f.name: r[f.name] for f in view.features},
            }
            for r in expected.to_pylist()
        ], view.name
        created = [t.column("created_timestamp").to_pylist() for t in tables]
        assert len(set(created[0])) == len(set(created[1])) == 1
        assert created[1][0] > created[0][0]


def test_backfill_writes_only_stream_rows_in_its_range(day, tmp_path):
    config = _config(tmp_path)
    start, end = CONFIG.start + timedelta(hours=6), CONFIG.start + timedelta(hours=12)
    result = backfill(config, history=day, views=[DRIVER_ACTIVITY], start=start, end=end)
    (path,) = result.files
    stamps = pq.read_table(path).column("event_timestamp").to_pylist()
    assert stamps
    assert all(start <= s < end for s in stamps)
    full = history_load(day).stream_rows(DRIVER_ACTIVITY)
    assert len(stamps) == sum(
        1 for ts in full.column("ts").to_pylist() if to_us(start) <= ts < to_us(end)
    )


def test_snapshot_instants_are_multiples_of_the_period_over_the_span():
    hour = 3_600_000_000
    assert snapshot_instants(
        first_us=5 * hour + 7, last_us=9 * hour + 1, every=timedelta(hours=2), start=None, end=None
    ) == [6 * hour, 8 * hour, 10 * hour]
    start = datetime(1970, 1, 1, 4, tzinfo=UTC)
    end = datetime(1970, 1, 1, 8, tzinfo=UTC)
    assert snapshot_instants(
        first_us=0, last_us=0, every=timedelta(hours=2), start=start, end=end
    ) == [6 * hour, 8 * hour]


def test_the_backfill_command_fills_the_offline_store(day, tmp_path, settings, capsys):
    settings.FEATURES_DATA_DIR = tmp_path / "features"
    settings.FEAST_REGISTRY = f"sqlite:///{tmp_path}/registry.db"
    call_command("features_backfill", "--history", str(day), "--snapshot-every", "12h")
    out = capsys.readouterr().out
    config = FeatureConfig.from_settings()
    history = history_load(day)
    for view in STREAM_VIEWS:
        rows = sum(
            pq.ParquetFile(p).metadata.num_rows
            for p in config.view_dir(view.name).glob("*.parquet")
        )
        assert rows == history.rows[view.name]
    assert f"backfill: {history.events} events" in out
    assert "2 snapshots" in out


def test_recompute_as_of_gives_each_samples_row_at_its_latest_event(day, day_rows, tmp_path):
    """What the consistency report compares served values with: a stream view's values as of
    ``t`` are those at the entity's latest event at or before ``t``; none before any event."""
    config = _config(tmp_path)
    for topic, (path,) in history_files(day).items():
        config.events_dir(topic).mkdir(parents=True)
        pq.write_table(pq.read_table(path), config.events_dir(topic) / "part-1.parquet")
    view = STREAM_VIEWS[0]
    key = max(
        (k for (name, k) in day_rows if name == view.name),
        key=lambda k: len(day_rows[(view.name, k)]),
    )
    rows = sorted(day_rows[(view.name, key)], key=lambda r: r.ts)
    between = (rows[0].ts + rows[1].ts) // 2 if rows[1].ts > rows[0].ts + 1 else rows[0].ts
    samples = [
        (view.name, key, rows[0].ts - 1),
        (view.name, key, between),
        (view.name, key, rows[-1].ts + 10**9),
        (view.name, ("never-seen",), rows[-1].ts),
        ("card_profile", key, rows[-1].ts),
    ]

    recomputed = recompute_as_of(config, samples)

    latest_before = max(r.ts for r in rows if r.ts <= between)
    assert recomputed == [
        dict.fromkeys(f.name for f in view.features),
        evaluate(view, rows, latest_before),
        evaluate(view, rows, rows[-1].ts),
        dict.fromkeys(f.name for f in view.features),
        evaluate(VIEWS_BY_NAME["card_profile"], day_rows[("card_profile", key)], rows[-1].ts),
    ]
    assert view_keys(config, view) == {k for (name, k) in day_rows if name == view.name}


def test_the_engine_holds_the_configs_memory_limit_and_spills_under_its_directory(tmp_path):
    config = replace(_config(tmp_path), duckdb_memory_limit="100MB")
    history = rows_load([], views=[PROBE], config=config)
    ((limit, spill),) = history.con.sql(
        "SELECT current_setting('memory_limit'), current_setting('temp_directory')"
    ).fetchall()
    assert limit == "95.3 MiB"  # 100 MB as DuckDB prints it
    assert Path(spill).parent == tmp_path / "features" / "duckdb"
    other = rows_load([], views=[PROBE], config=config).con
    assert other.sql("SELECT current_setting('temp_directory')").fetchall() != [(spill,)]


def test_a_payment_counts_for_its_device_and_address_but_no_address_is_nobodys():
    from features.definitions import DEVICE_SHARING, IP_SHARING
    from features.windows import evaluate, extract

    def rows(ip: str, card: str, n: int) -> list[Row]:
        payload = {"card_id": card, "rider_id": f"r-{card}", "amount_cents": 500,
                   "context": {"device_id": "dev-1", "ip": ip}}  # fmt: skip
        return extract("payments.authorized.v1", payload, event_id=f"e{n}", ts=n,
                       views=[DEVICE_SHARING, IP_SHARING])  # fmt: skip

    nobody = "0.0.0.0"  # noqa: S104 (a replayed row without an address, not a bind)
    found = rows("10.0.0.7", "c1", 1) + rows("10.0.0.7", "c2", 2) + rows(nobody, "c3", 3)
    device = [r for r in found if r.view == "device_sharing"]
    address = [r for r in found if r.view == "ip_sharing"]
    assert [r.key for r in device] == [("dev-1",)] * 3
    assert [r.key for r in address] == [("10.0.0.7",)] * 2
    values = evaluate(IP_SHARING, address, 3)
    assert (values["ip_distinct_cards_1d"], values["ip_distinct_riders_7d"]) == (2, 2)
    assert evaluate(DEVICE_SHARING, device, 3)["device_distinct_cards_7d"] == 3


def test_a_payment_is_not_its_own_previous_one():
    from features.definitions import CARD_RECENCY
    from features.windows import extract, value_at

    def paid(event_id: str, seconds: int) -> list[Row]:
        payload = {"card_id": "c1", "rider_id": "r1", "amount_cents": 500}
        return extract("payments.authorized.v1", payload, event_id=event_id,
                       ts=seconds * 1_000_000, views=[CARD_RECENCY])  # fmt: skip

    rows = paid("e1", 100) + paid("e2", 160) + paid("e3", 160)
    name = "card_seconds_since_previous_payment"
    assert value_at(CARD_RECENCY, rows, 100_000_000)[0] == {name: None}  # the first payment
    # Two payments in the same microsecond: neither is the other's previous one.
    assert value_at(CARD_RECENCY, rows, 160_000_000)[0] == {name: 60.0}
    assert value_at(CARD_RECENCY, rows, 190_000_000)[0] == {name: 30.0}
    # More than a day after the last payment: none in the window.
    assert value_at(CARD_RECENCY, rows, 160_000_000 + 86_400_000_000)[0] == {name: None}
