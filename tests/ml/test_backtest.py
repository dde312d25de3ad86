"""``manage.py backtest``: a file of labelled payments from a world unlike the simulator's (the
fraud-detection literature's reference generator, ``benchmarks.labelled_payments``) through the
feature definitions offline, a model chosen, trained and judged; the report; bad input refused
with nothing written."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from django.core.management import CommandError, call_command

from benchmarks.labelled_payments import generate
from features.definitions import FRAUD_CAPTURE_V1
from features.store import FeatureConfig
from ml.backtest import (
    AUTHORIZATION,
    CAPTURE,
    BacktestError,
    Options,
    Split,
    checkpoint_frame,
    file_events,
    fold_windows,
    report_html,
    run_backtest,
)
from ml.train import feature_matrix, model_features

# Trains models on a generated world: fails alone if it grows (tests/memory_ceiling.py).
pytestmark = pytest.mark.memory_ceiling(3)

START = datetime(2026, 4, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("world") / "payments.csv"
    generate(customers=800, terminals=1600, days=56, seed=3).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def report(world, tmp_path_factory):
    options = Options(split=Split(train_start=START + timedelta(days=35)), drop_known_cards=True)
    steps: list[str] = []
    work = tmp_path_factory.mktemp("work")
    return run_backtest(world, options, work=work, progress=steps.append), steps, work


def test_both_checkpoints_find_the_worlds_fraud_and_the_driver_adds_to_it(report):
    result, steps, _ = report
    by = {c.checkpoint: c for c in result.checkpoints}
    assert set(by) == {AUTHORIZATION, CAPTURE}
    for c in by.values():
        rate = c.test_frauds / c.test_rows
        assert c.test_frauds > 10
        # Average precision of a random ranking is the fraud rate: far above it.
        assert c.ap > 10 * rate, (c.checkpoint, c.ap, rate)
        assert c.auc > 0.7
        assert c.features == len(model_features(c.service))
    # Compromised terminals are drivers: known only at the capture, and its model finds more.
    assert by[CAPTURE].ap > by[AUTHORIZATION].ap
    capture_top = [name for name, _ in by[CAPTURE].importances[:10]]
    assert any(name.startswith("driver_") for name in capture_top), capture_top
    assert any(s.startswith("authorization: fold") for s in steps)


def test_the_folds_end_before_the_test_less_the_label_delay_and_train_before_them(report):
    result, _, _ = report
    options = Options(split=Split(train_start=START + timedelta(days=35)))
    windows = fold_windows(options)
    split = options.split
    for train_start, train_end, check_start, check_end in windows:
        assert check_end <= split.test_start - options.label_delay
        assert train_end + split.gap_days * timedelta(days=1) == check_start
        assert train_end - train_start == timedelta(days=split.train_days)
    # The newest folds the file covers were used; those before its first day were not.
    used = [f["start"] for f in result.checkpoints[0].folds]
    assert used == [w[2].isoformat() for w in windows if w[0] >= START]


def test_a_payment_of_five_times_the_cards_mean_scores_higher(report, world):
    result, _, work = report
    c = next(c for c in result.checkpoints if c.checkpoint == AUTHORIZATION)
    frame = _frame(work, c.service)
    legit = frame[(frame["label"] == 0) & frame["card_amount_mean_30d"].notna()].head(300)
    bigger = legit.copy()
    mean = bigger["card_amount_mean_30d"]
    bigger["payment_amount_cents"] = (mean * 5).round().astype("Int64")
    for window in ("7d", "30d"):
        m, s = bigger[f"card_amount_mean_{window}"], bigger[f"card_amount_std_{window}"]
        bigger[f"amount_zscore_card_{window}"] = (mean * 5 - m) / s.clip(lower=100)
    features = model_features(c.service)
    before = c.booster.predict(feature_matrix(legit, features))
    after = c.booster.predict(feature_matrix(bigger, features))
    assert np.median(after - before) > 0
    assert (after > before).mean() > 0.8


def test_a_driver_whose_trips_were_charged_back_raises_the_capture_score(report):
    result, _, work = report
    c = next(c for c in result.checkpoints if c.checkpoint == CAPTURE)
    frame = _frame(work, c.service)
    rows = frame[frame["label"] == 0].head(300).copy()
    features = model_features(c.service)
    clean, charged = rows.copy(), rows.copy()
    for window in ("1d", "7d", "30d"):
        payments = rows[f"driver_risk_payments_{window}"].fillna(0).clip(lower=10)
        clean[f"driver_risk_payments_{window}"] = payments
        charged[f"driver_risk_payments_{window}"] = payments
        clean[f"driver_risk_chargebacks_{window}"] = 0
        charged[f"driver_risk_chargebacks_{window}"] = (payments / 2).round()
        clean[f"driver_fraud_share_{window}"] = 0.0
        charged[f"driver_fraud_share_{window}"] = (payments / 2).round() / payments
    before = c.booster.predict(feature_matrix(clean, features))
    after = c.booster.predict(feature_matrix(charged, features))
    assert (after > before).mean() > 0.8


def test_a_label_counts_in_the_risk_features_only_from_its_arrival(tmp_path):
    """A fraud on a driver at day 1, its chargeback filed 7 days later: the driver's fraud share
    is 0 at every instant before the filing, positive after (the classic leak counts it at the
    payment)."""
    rows = [
        {
            "timestamp": "2026-04-01T10:00:00Z",
            "rider": "r1",
            "card": "c1",
            "amount": "20",
            "driver": "d1",
            "label": 1,
        },
        *(
            {
                "timestamp": f"2026-04-{day:02d}T12:00:00Z",
                "rider": f"r{day}",
                "card": f"c{day}",
                "amount": "15",
                "driver": "d1",
                "label": 0,
            }
            for day in range(2, 13)
        ),
    ]
    path = tmp_path / "tiny.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    summary = file_events(path, tmp_path / "work", label_delay=timedelta(days=7))
    assert (summary.payments, summary.frauds, summary.drivers) == (12, 1, 1)
    config = FeatureConfig(
        project="t", registry_url="", online="sqlite", data_dir=tmp_path / "work" / "features"
    )
    from features.offline.backfill import backfill

    views = [v for v in FRAUD_CAPTURE_V1.views if v.mode == "batch"]
    backfill(config, history=tmp_path / "work", views=views, snapshot_every=timedelta(hours=6))
    spine = pq.read_table(tmp_path / "work" / "spine.parquet").to_pandas()
    frame = checkpoint_frame(config, tmp_path / "work", spine, FRAUD_CAPTURE_V1)
    filed = pd.Timestamp("2026-04-08T10:00:00Z")
    # Snapshots every 6 hours: the first after the filing is at 12:00.
    before = after = 0
    for stamp, share in zip(frame["event_timestamp"], frame["driver_fraud_share_30d"], strict=True):
        if stamp <= filed:
            assert pd.isna(share) or share == 0, stamp
            before += not pd.isna(share)
        elif stamp >= filed + pd.Timedelta(hours=6):
            assert share > 0, stamp
            after += 1
    assert (before, after) == (6, 4)  # days 2-7 read a share of 0, days 9-12 a positive one


def test_the_command_writes_the_report_and_registers_the_model(world, tmp_path, settings, db):
    settings.ML_MODELS_DIR = tmp_path / "models"
    out = tmp_path / "out"
    call_command(
        "backtest",
        str(world),
        train_start="2026-05-06",
        precision=0.5,
        out=out,
        register=True,
    )
    body = json.loads((out / "report.json").read_text())
    assert [c["checkpoint"] for c in body["checkpoints"]] == [AUTHORIZATION, CAPTURE]
    assert body["options"]["target_precision"] == 0.5
    for c in body["checkpoints"]:
        assert 0 < c["calibrated_threshold"] <= 1
        assert len(c["cp_at_k_per_day"]) == 7
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 4  # PR curves, CP@k, two importances
    from ml.models import ModelVersion

    model = ModelVersion.objects.get()
    assert model.feature_service == "fraud_scoring_v2"
    assert model.source.startswith("backtest of payments.csv")
    assert model.metrics["backtest"]["ap"] == body["checkpoints"][0]["ap"]


@pytest.mark.parametrize(
    ("content", "options", "message"),
    [
        ("timestamp,rider,amount,label\n", {}, "missing column(s) card"),
        (
            "timestamp,rider,card,amount,label\n2026-04-01T00:00:00Z,r,c,ten,0\n",
            {},
            "line 2: amount 'ten' is not a number",
        ),
        (
            "timestamp,rider,card,amount\n2026-04-01T00:00:00Z,r,c,10\n",
            {},
            "no label column",
        ),
        (
            "timestamp,rider,card,amount,label\n2026-04-01T00:00:00Z,r,c,10,0\n",
            {"train_start": "2026-03-01"},
            "before the file's first payment",
        ),
        (
            "timestamp,rider,card,amount,label\n2026-04-01T00:00:00Z,r,c,10,0\n",
            {},
            "after the file's last payment",
        ),
        ("", {"precision": 1.5}, "--precision must be in (0, 1]"),
        ("", {"train_start": "April"}, "is not a date"),
    ],
)
def test_bad_input_is_refused_naming_the_row_or_option_and_nothing_is_written(
    tmp_path, content, options, message
):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    out = tmp_path / "out"
    with pytest.raises(CommandError, match=_literal(message)):
        call_command("backtest", str(path), out=out, **{"train_start": "2026-04-01", **options})
    assert not out.exists()


def test_a_training_window_without_known_fraud_is_refused(world, tmp_path):
    frame = pd.read_csv(world)
    frame["label"] = np.where(frame["timestamp"] < "2026-05-20", 0, frame["label"])
    path = tmp_path / "late-fraud.csv"
    frame.to_csv(path, index=False)
    options = Options(split=Split(train_start=START + timedelta(days=35)))
    with pytest.raises(BacktestError, match=r"no validation fold|no fraud known"):
        run_backtest(path, options, work=tmp_path / "work")


def _frame(work: Path, service: str) -> pd.DataFrame:
    config = FeatureConfig(
        project="backtest", registry_url="", online="sqlite", data_dir=work / "features"
    )
    spine = pq.read_table(work / "spine.parquet").to_pandas()
    spine = spine[spine["event_timestamp"] >= pd.Timestamp("2026-05-06", tz="UTC")].head(3000)
    from features.definitions import FEATURE_SERVICES

    return checkpoint_frame(config, work, spine.reset_index(drop=True), FEATURE_SERVICES[service])


def _literal(text: str) -> str:
    import re

    return re.escape(text)


@pytest.mark.browser
def test_the_report_page_reads_in_chromium(report, tmp_path, page):
    result, _, _ = report
    path = tmp_path / "report.html"
    path.write_text(report_html(result))
    page.goto(path.as_uri())
    rows = page.locator("tbody tr")
    assert rows.count() == 2
    assert rows.nth(0).locator("th").inner_text() == AUTHORIZATION
    ap = float(rows.nth(1).locator("td").nth(3).inner_text())
    assert ap == pytest.approx(result.checkpoints[1].ap, abs=0.0005)
    images = page.locator("img")
    assert images.count() == 4
    for i in range(4):
        width = images.nth(i).evaluate("img => img.complete ? img.naturalWidth : 0")
        assert width > 200, images.nth(i).get_attribute("alt")
    assert "Card Precision@100 per test day" in page.content()


def test_a_simulated_history_is_backtested_with_its_own_label_delays(tmp_path):
    """A ``simulate history`` directory instead of a file: its own events (every topic), the
    label from its ground truth, known when its own chargebacks arrived."""
    from simulator.city import city_from_file
    from simulator.config import LabelConfig, SimConfig
    from simulator.engine import Simulation
    from simulator.history import history_write
    from simulator.report import Stats

    config = SimConfig(seed=11, riders=500, drivers=60, labels=LabelConfig(delay_median_days=0.5))
    history = tmp_path / "history"
    simulation = Simulation(config, city_from_file())
    history_write(
        simulation.events(until=config.start + timedelta(days=12)),
        out=history,
        stats=Stats(mode="history"),
    )
    start = config.start.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=6)
    options = Options(
        split=Split(train_start=start, train_days=2, gap_days=1, test_days=2),
        label_delay=timedelta(days=1),
        k=20,
        budget=20,
    )
    result = run_backtest(history, options, work=tmp_path / "work")

    assert result.options["history"] is True
    truth = pq.read_table(history / "ground_truth.parquet").to_pandas()
    paid = truth[truth["topic"] == "payments.authorized.v1"]
    assert result.summary["payments"] == len(paid)
    assert result.summary["frauds"] == int(paid["is_fraud"].sum())
    spine = pq.read_table(tmp_path / "work" / "spine.parquet").to_pandas()
    # A label is known only where a fraud chargeback arrived, and never before its payment.
    known = spine[spine["known_at"].notna()]
    assert known["label"].all()
    assert (known["known_at"] > known["event_timestamp"]).all()
    assert 0 < len(known) < spine["label"].sum()  # some frauds are never charged back
    by = {c.checkpoint: c for c in result.checkpoints}
    assert set(by) == {AUTHORIZATION, CAPTURE}
    for c in by.values():
        assert c.test_frauds > 0
        assert c.ap > 5 * c.test_frauds / c.test_rows
