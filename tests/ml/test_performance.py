"""Each model's live performance per period (``ml.performance``), from scores and labels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from ml.performance import performance_table

T = datetime(2026, 3, 1, 10, tzinfo=UTC)


def _frame(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(
        rows,
        columns=[
            "model_version",
            "occurred_at",
            "decision",
            "score",
            "card_id",
            "latency_ms",
            "label",
        ],
    )


def test_each_model_and_period_gets_its_volumes_and_quality():
    rows = [
        # Model a, first hour: a fraud caught, a legitimate payment flagged, a fraud missed,
        # a legitimate approval, one not known yet.
        ("a", T, "decline", 0.95, "c1", 10.0, 1.0),
        ("a", T + timedelta(minutes=5), "review", 0.6, "c2", 20.0, 0.0),
        ("a", T + timedelta(minutes=9), "approve", 0.2, "c3", 30.0, 1.0),
        ("a", T + timedelta(minutes=20), "approve", 0.1, "c4", 40.0, 0.0),
        ("a", T + timedelta(minutes=30), "approve", 0.05, "c5", 50.0, np.nan),
        # Model b, the next hour: two approvals, no fraud among them.
        ("b", T + timedelta(hours=1), "approve", 0.1, "c6", 5.0, 0.0),
        ("b", T + timedelta(hours=1, minutes=1), "approve", 0.2, "c7", 7.0, 0.0),
    ]

    table = performance_table(_frame(rows), period="h", k=2, review_minutes=4.0)

    assert [(r["model"], r["period"]) for r in table] == [("a", T), ("b", T + timedelta(hours=1))]
    a, b = table
    assert (a["payments"], a["labelled"], a["frauds"]) == (5, 4, 2)
    assert a["flagged_share"] == pytest.approx(0.4)
    assert a["review_minutes"] == 4.0  # one review; a decline costs no analyst
    assert (a["precision"], a["recall"]) == (0.5, 0.5)
    # Ranked 0.95 (fraud), 0.6, 0.2 (fraud), 0.1: precision 1 at the first, 2/3 at the third.
    assert a["average_precision"] == pytest.approx((1 + 2 / 3) / 2)
    assert a["card_precision"] == 0.5  # the two top cards: c1 (fraud) and c2
    assert a["latency_p50_ms"] == 30.0
    assert (b["recall"], b["average_precision"], b["card_precision"]) == (None, None, None)
    assert b["precision"] is None  # nothing flagged
    assert performance_table(_frame([]), period="D", k=2, review_minutes=4.0) == []
