"""History mode: Parquet files whose rows are the summary's counts, truth beside the events."""

import json
from datetime import timedelta

import pyarrow.parquet as pq
from django.core.management import call_command

from events.contracts import TOPICS, decode
from simulator.config import SimConfig
from simulator.engine import Simulation
from simulator.history import history_write
from simulator.report import Stats


def test_history_files_hold_every_event_and_their_truth(tmp_path, city):
    config = SimConfig(seed=4, riders=150, drivers=30)
    emitted = list(Simulation(config, city).events(until=config.start + timedelta(hours=36)))

    stats = Stats(mode="history")
    summary = history_write(
        Simulation(config, city).events(until=config.start + timedelta(hours=36)),
        out=tmp_path,
        stats=stats,
    )

    assert summary["published"] == len(emitted)
    assert sorted(p.name for p in (tmp_path / "events").iterdir()) == sorted(
        f"{topic}.parquet" for topic in TOPICS
    )
    total = 0
    for topic in TOPICS:
        table = pq.read_table(tmp_path / "events" / f"{topic}.parquet")
        assert table.num_rows == summary["files"][f"events/{topic}.parquet"]
        total += table.num_rows
        expected = [e.event for e in emitted if e.event.topic == topic]
        payloads = table.column("payload").to_pylist()
        assert payloads == [e.encode().decode() for e in expected]
        assert [decode(topic, p.encode()) for p in payloads] == expected
        assert table.column("key").to_pylist() == [e.key() for e in expected]
    assert total == len(emitted)
    truth = pq.read_table(tmp_path / "ground_truth.parquet").to_pylist()
    assert len(truth) == summary["files"]["ground_truth.parquet"]
    assert len(truth) == sum(1 for e in emitted if e.truth is not None)
    fraud = [row for row in truth if row["is_fraud"]]
    assert {row["scenario"] for row in fraud} == set(stats.fraud_events)
    assert len(fraud) == sum(stats.fraud_events.values())
    assert json.loads((tmp_path / "summary.json").read_text()) == json.loads(json.dumps(summary))


def test_the_history_command_writes_the_files_it_reports(tmp_path, capsys):
    call_command(
        "simulate", "history", "--days", "0.5", "--riders", "100", "--drivers", "20",
        "--seed", "9", "--out", str(tmp_path),
    )  # fmt: skip

    out = capsys.readouterr().out
    summary = json.loads((tmp_path / "summary.json").read_text())
    rows = {name: pq.ParquetFile(tmp_path / name).metadata.num_rows for name in summary["files"]}
    assert rows == summary["files"]
    assert sum(v for k, v in rows.items() if k.startswith("events/")) == summary["published"]
    assert f"events published: {summary['published']:,}" in out
    assert "history finished" in out
