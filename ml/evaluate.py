"""Model evaluation: ranking quality (AUC-ROC, AUC-PR) and what the decision thresholds do.

Pure numpy and pandas: no Django, no I/O. Scores are probabilities of fraud in [0, 1]; labels
are 0/1.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd


def _arrays(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels, dtype=np.int8)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError(f"labels {y.shape} and scores {s.shape} must be equal 1-d arrays")
    return y, s


def auc_roc(labels: Any, scores: Any) -> float | None:
    """Return the area under the ROC curve: the chance a random positive scores above a random
    negative, ties counting half (Mann-Whitney U). ``None`` when a class is absent."""
    y, s = _arrays(labels, scores)
    positives = int(y.sum())
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_scores = s[order]
    # Average rank (1-based) for each run of tied scores.
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1]
    ends = np.r_[starts[1:], len(s)]
    for start, end in zip(starts, ends, strict=True):
        ranks[order[start:end]] = (start + end + 1) / 2
    u = ranks[y == 1].sum() - positives * (positives + 1) / 2
    return float(u / (positives * negatives))


def auc_pr(labels: Any, scores: Any) -> float | None:
    """Return the average precision: sum over score thresholds of precision times the recall
    gained there (tied scores form one threshold). ``None`` without positives."""
    y, s = _arrays(labels, scores)
    positives = int(y.sum())
    if positives == 0:
        return None
    order = np.argsort(-s, kind="mergesort")
    y_sorted, s_sorted = y[order], s[order]
    true_positives = np.cumsum(y_sorted)
    # The last index of each run of equal scores: one threshold per distinct score.
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), len(s) - 1]
    tp = true_positives[last]
    precision = tp / (last + 1)
    recall = tp / positives
    gained = np.diff(np.r_[0.0, recall])
    return float((precision * gained).sum())


def precision_recall_at(labels: Any, scores: Any, threshold: float) -> dict[str, float | None]:
    """Return precision, recall and the flagged share of scores >= ``threshold``; precision is
    ``None`` when nothing is flagged, recall when there are no positives."""
    y, s = _arrays(labels, scores)
    flagged = s >= threshold
    tp = int((flagged & (y == 1)).sum())
    n_flagged = int(flagged.sum())
    positives = int(y.sum())
    return {
        "precision": tp / n_flagged if n_flagged else None,
        "recall": tp / positives if positives else None,
        "flagged_share": n_flagged / len(y) if len(y) else None,
    }


def evaluation(labels: Any, scores: Any, thresholds: Mapping[str, float]) -> dict[str, Any]:
    """Return the metrics of ``scores`` against ``labels``: rows, positives, positive rate,
    auc_roc, auc_pr and, per named threshold (e.g. ``review``, ``decline``), the threshold with
    its precision, recall and flagged share."""
    y, s = _arrays(labels, scores)
    positives = int(y.sum())
    return {
        "rows": len(y),
        "positives": positives,
        "positive_rate": positives / len(y) if len(y) else None,
        "auc_roc": auc_roc(y, s),
        "auc_pr": auc_pr(y, s),
        "at_thresholds": {
            name: {"threshold": threshold, **precision_recall_at(y, s, threshold)}
            for name, threshold in thresholds.items()
        },
    }


def card_precision_at_k(days: Any, cards: Any, labels: Any, scores: Any, k: int) -> float | None:
    """Return Card Precision@k: per day, of the ``k`` cards scored highest (a card's highest
    score that day), the share with a fraudulent payment that day; averaged over the days.
    What an analyst team that checks ``k`` cards a day finds. ``None`` for no rows."""
    y, s = _arrays(labels, scores)
    frame = pd.DataFrame({"day": np.asarray(days), "card": np.asarray(cards), "y": y, "s": s})
    if frame.empty:
        return None
    per_card = frame.groupby(["day", "card"], sort=False).agg(s=("s", "max"), y=("y", "max"))
    shares = []
    for _, cards_of_day in per_card.groupby(level="day", sort=True):
        top = cards_of_day.sort_values("s", ascending=False, kind="mergesort").head(k)
        shares.append(float(top["y"].mean()))
    return float(np.mean(shares))
