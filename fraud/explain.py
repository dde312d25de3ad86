"""Explanations: the features that pushed a score up, in plain words.

The contributions are LightGBM's ``pred_contrib`` (SHAP values, in log-odds, one per input
column, then the bias). The reasons are the strongest positive contributions, each rendered with
its feature's ``describe`` template (``features.definitions``; on-demand features:
``features.ondemand.DESCRIPTIONS``).

Pure Python: no Django, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

from features.definitions import VIEWS
from features.ondemand import DESCRIPTIONS
from frontend.money import money_text

MAX_REASONS = 3


@cache
def describe_templates() -> dict[str, str]:
    """Return feature name -> its plain-words template (``{value}`` is replaced)."""
    templates = {f.name: f.describe for view in VIEWS for f in view.features if f.describe}
    return {**templates, **DESCRIPTIONS}


def is_missing(value: Any) -> bool:
    """Return whether a feature value is missing (None or NaN): never a reason."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def is_money(name: str) -> bool:
    """Return whether feature ``name`` is an amount in cents (``*_cents*``, the median fare per
    km; not the ratios of amounts, which are plain numbers)."""
    return "_cents" in name or name.startswith("zone_median_fare_per_km")


def value_text(name: str, value: Any, currency: str = "EUR") -> str:
    """Return ``value`` of feature ``name`` as a person reads it: money as money
    (``is_money``), whole numbers without a decimal point, other numbers with two decimals,
    instants (``*_at``, epoch seconds) as UTC date and time."""
    if isinstance(value, bool):
        return str(int(value))
    if is_money(name) and isinstance(value, int | float):
        return money_text(value, currency)
    if name.endswith("_at") and isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M UTC")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def reason_text(name: str, value: Any, currency: str = "EUR") -> str:
    """Return the plain-words reason for feature ``name`` with ``value``."""
    if is_missing(value):
        return f"no value was available for {name.replace('_', ' ')}"
    template = describe_templates().get(name)
    text = value_text(name, value, currency)
    if not template:
        return f"{name.replace('_', ' ')} is {text}"
    return template.replace("{value}", text)


def reasons(
    *,
    contributions: Sequence[float],
    feature_names: Sequence[str],
    values: Mapping[str, Any],
    limit: int = MAX_REASONS,
) -> list[dict[str, Any]]:
    """Return up to ``limit`` reasons, strongest first: the features with a positive
    contribution (``contributions`` has one per name, then the bias, which is ignored), each as
    ``{feature, value, contribution, text}``. Ties keep the feature order."""
    # Rounded as reported: a contribution of a few millionths is no reason.
    rounded = [round(float(contributions[i]), 6) for i in range(len(feature_names))]
    ranked = sorted((-c, i) for i, c in enumerate(rounded) if c > 0)
    out = []
    for negative, i in ranked[:limit]:
        name = feature_names[i]
        value = values.get(name)
        out.append(
            {
                "feature": name,
                "value": None if is_missing(value) else value,
                "contribution": -negative,
                "text": reason_text(name, value),
            }
        )
    return out
