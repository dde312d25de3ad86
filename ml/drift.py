"""Drift: how far a recent distribution moved from a model's training reference, as the
population stability index (PSI). Pure numpy: no Django, no I/O.

A reference (``reference``) is kept with each model: for each input and for the score, the
edges of up to ten bins at the training values' deciles, the share of values in each bin and
the share of missing values (a bin of its own: a feature that stops being served is drift
too). ``psi`` puts recent values in the same bins and sums ``(p - q) * ln(p / q)`` over them;
the usual reading is below 0.1 stable, 0.1-0.2 moved, above 0.2 shifted (the trigger's
default).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

DECILES = np.linspace(0.1, 0.9, 9)
# A bin empty on one side would make the index infinite: shares are floored at this.
FLOOR = 1e-4


def _values(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def _shares(values: np.ndarray, edges: np.ndarray) -> list[float]:
    """Return the share of ``values`` in each bin of ``edges`` (right-closed), then missing."""
    if len(values) == 0:
        return [0.0] * (len(edges) + 2)
    present = values[~np.isnan(values)]
    counts = np.bincount(np.searchsorted(edges, present, side="left"), minlength=len(edges) + 1)
    missing = len(values) - len(present)
    return [float(c) / len(values) for c in counts] + [missing / len(values)]


def reference(values: Any) -> dict[str, Any]:
    """Return the reference of ``values`` (missing as NaN): bin edges at its deciles (distinct
    ones only: a feature of few values gets few bins) and the shares of each bin and of
    missing values."""
    values = _values(values)
    present = values[~np.isnan(values)]
    edges = (
        np.unique(np.quantile(present, DECILES, method="inverted_cdf"))
        if len(present)
        else np.array([])
    )
    return {"edges": edges.tolist(), "shares": _shares(values, edges)}


def psi(ref: Mapping[str, Any], values: Any) -> float | None:
    """Return the PSI of ``values`` against ``ref`` (``reference``), ``None`` for no values."""
    values = _values(values)
    if len(values) == 0:
        return None
    expected = np.maximum(np.asarray(ref["shares"], dtype=np.float64), FLOOR)
    shares = _shares(values, np.asarray(ref["edges"], dtype=np.float64))
    actual = np.maximum(np.asarray(shares, dtype=np.float64), FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def references(columns: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Return the reference of each named column."""
    return {name: reference(values) for name, values in columns.items()}


def drift_report(
    refs: Mapping[str, Mapping[str, Any]], columns: Mapping[str, Any]
) -> dict[str, float]:
    """Return the PSI of each column that has a reference and values, largest first."""
    found = {}
    for name, values in columns.items():
        if name in refs:
            value = psi(refs[name], values)
            if value is not None:
                found[name] = round(value, 4)
    return dict(sorted(found.items(), key=lambda item: -item[1]))
