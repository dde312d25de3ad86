"""The shadow report: a shadow model's scores and decisions beside the champion's on the same
payments. Pure: the caller reads the pairs and the labels.

On the same payments, two models are compared without the noise of a split: where they agree
nothing is learned, and every outcome counts for both. The caller gives an outcome only for the
payments past maturity (their label, else "legitimate"): earlier, the known ones would be those
the champion flagged (reviewed within minutes), and both models would be judged on its flags
alone."""

from __future__ import annotations

from typing import Any

import numpy as np

from ml.evaluate import auc_pr


def _rank(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values))
    return ranks


def _correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def _at_decisions(flagged: np.ndarray, labels: np.ndarray) -> dict[str, float | None]:
    caught = int((flagged & (labels == 1)).sum())
    return {
        "precision": caught / int(flagged.sum()) if flagged.any() else None,
        "recall": caught / int((labels == 1).sum()) if (labels == 1).any() else None,
    }


def _times(values: np.ndarray) -> dict[str, float] | None:
    kept = values[~np.isnan(values)]
    if not len(kept):
        return None
    return {"p50": float(np.percentile(kept, 50)), "p99": float(np.percentile(kept, 99))}


def shadow_report(
    *,
    champion_scores: np.ndarray,
    champion_decisions: np.ndarray,
    shadow_scores: np.ndarray,
    shadow_decisions: np.ndarray,
    labels: np.ndarray,
    champion_us: np.ndarray | None = None,
    shadow_us: np.ndarray | None = None,
) -> dict[str, Any]:
    """Return the comparison of a shadow with the champion on the same payments (one element
    per payment in each array; decisions ``approve``, ``review`` or ``decline``; ``labels`` 1,
    0 or NaN when not known yet): how many payments, the share where the decisions agree, the
    scores' correlation (Pearson and by rank), each model's flagged and declined share, its
    prediction time a payment (µs, p50 and p99, where ``champion_us`` and ``shadow_us`` keep
    one; NaN where not), and on the labelled payments each model's precision and recall at its
    decisions and average precision of its scores."""
    champion_decisions = np.asarray(champion_decisions)
    shadow_decisions = np.asarray(shadow_decisions)
    champion_scores = np.asarray(champion_scores, dtype=float)
    shadow_scores = np.asarray(shadow_scores, dtype=float)
    labels = np.asarray(labels, dtype=float)
    n = len(champion_scores)
    report: dict[str, Any] = {"payments": n}
    if n == 0:
        return report
    champion_flags = champion_decisions != "approve"
    shadow_flags = shadow_decisions != "approve"
    report.update(
        agreement=float((champion_decisions == shadow_decisions).mean()),
        flag_agreement=float((champion_flags == shadow_flags).mean()),
        correlation=_correlation(champion_scores, shadow_scores),
        rank_correlation=_correlation(_rank(champion_scores), _rank(shadow_scores)),
        flagged={
            "champion": float(champion_flags.mean()),
            "shadow": float(shadow_flags.mean()),
        },
        declined={
            "champion": float((champion_decisions == "decline").mean()),
            "shadow": float((shadow_decisions == "decline").mean()),
        },
        model_us={
            "champion": None if champion_us is None else _times(np.asarray(champion_us, float)),
            "shadow": None if shadow_us is None else _times(np.asarray(shadow_us, float)),
        },
    )
    known = ~np.isnan(labels)
    y = labels[known].astype(int)
    report["labelled"] = int(known.sum())
    report["frauds"] = int(y.sum())
    for name, scores, flags in (
        ("champion", champion_scores, champion_flags),
        ("shadow", shadow_scores, shadow_flags),
    ):
        report[name] = {
            **_at_decisions(flags[known], y),
            "average_precision": auc_pr(y, scores[known]) if y.any() and len(y) else None,
        }
    return report
