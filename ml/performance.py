"""Each deployed model's live performance per period: what it decided and, on the payments
whose outcome is known, how well. Pure: the caller reads the scores and the labels.

A payment's outcome is its label (an analyst's decision, a chargeback) or, once matured with
none, "legitimate"; younger payments without a label count in the volumes (decided, flagged,
review load, latency) but not in the quality figures. A period whose labelled payments hold no
fraud has no recall and no average precision (nothing to find)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ml.evaluate import auc_pr, card_precision_at_k

FLAGGED = ("review", "decline")


def performance_table(
    frame: pd.DataFrame, *, period: str, k: int, review_minutes: float
) -> list[dict[str, Any]]:
    """Return one row per (model, period) of ``frame`` (one row per scored payment:
    ``model_version``, ``occurred_at``, ``decision``, ``score``, ``card_id``, ``latency_ms``
    and ``label``: 1, 0 or NaN), periods of ``period`` ("D" a day, "h" an hour), in time order:
    payments decided, flagged share, analyst-minutes of review (``review_minutes`` a review),
    latency p50 and p99, labelled payments and frauds among them, precision and recall at the
    model's decisions, average precision of its scores and Card Precision@``k``."""
    if frame.empty:
        return []
    frame = frame.assign(
        period=pd.to_datetime(frame["occurred_at"], utc=True).dt.floor(period),
        flagged=frame["decision"].isin(FLAGGED),
    )
    rows = []
    for (model, start), group in frame.groupby(["model_version", "period"], sort=True):
        known = group[group["label"].notna()]
        y = known["label"].astype(int).to_numpy()
        flags = known["flagged"].to_numpy()
        caught = int((flags & (y == 1)).sum())
        latency = group["latency_ms"].to_numpy(dtype=float)
        rows.append(
            {
                "model": model,
                "period": start.to_pydatetime(),
                "payments": len(group),
                "flagged_share": float(group["flagged"].mean()),
                "review_minutes": float((group["decision"] == "review").sum() * review_minutes),
                "latency_p50_ms": float(np.percentile(latency, 50)),
                "latency_p99_ms": float(np.percentile(latency, 99)),
                "labelled": len(known),
                "frauds": int(y.sum()),
                "precision": caught / int(flags.sum()) if flags.any() else None,
                "recall": caught / int(y.sum()) if y.any() else None,
                "average_precision": auc_pr(y, known["score"].to_numpy()) if len(y) else None,
                "card_precision": card_precision_at_k(
                    known["period"].astype(str).to_numpy(),
                    known["card_id"].to_numpy(),
                    y,
                    known["score"].to_numpy(),
                    k,
                )
                if y.any()
                else None,
            }
        )
    rows.sort(key=lambda r: (r["period"], r["model"]))
    return rows
