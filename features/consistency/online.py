"""Online vs offline: do the values the online store serves equal the offline recomputation?

For a sample of vectors read online (entity keys, the instant they were read, the values),
recompute the same features offline, with the DuckDB engine over the archived event history, as
of the same instant, and report per feature:

- ``mismatch_rate``: share of samples whose served and recomputed values differ (a value on one
  side and none on the other counts as a difference; floats compare to 1e-9 relative);
- ``missing_rate``: share of samples served without a value where offline has one;
- ``mean_abs_delta``: mean of |served - offline| over the samples where both have a value.

A stream view's value "as of t" is its row at the entity's latest event at or before t (what the
online store holds at t, see ``features.definitions``), so on a stream the processor has caught
up with, every mismatch is a bug: the target is 0. Samples taken while the processor lags show
the lag as missing or older values.

This check cannot see what the scorer was served: it reads the online store after the fact
(``features.consistency.served`` compares what the scorer logged).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from features.consistency.reports import (
    report_json,
    report_last,
    report_load,
    report_save,
    same,
    share,
)
from features.definitions import STREAM_VIEWS, VIEWS_BY_NAME, View
from features.store import FeatureConfig, feature_store

REPORT_FILE = "consistency.json"


@dataclass(frozen=True)
class Served:
    """One view's values as served for one entity at one instant (µs since the epoch)."""

    view: str
    key: tuple[str, ...]
    at: int
    values: dict[str, Any]


@dataclass
class FeatureConsistency:
    name: str
    view: str
    sampled: int = 0
    mismatches: int = 0
    missing: int = 0
    delta_sum: float = 0.0
    both_present: int = 0

    @property
    def mismatch_rate(self) -> float:
        return share(self.mismatches, self.sampled)

    @property
    def missing_rate(self) -> float:
        return share(self.missing, self.sampled)

    @property
    def mean_abs_delta(self) -> float:
        return share(self.delta_sum, self.both_present)


@dataclass
class Report:
    created_at: float
    sampled: int
    features: list[FeatureConsistency] = field(default_factory=list)
    examples: list[dict] = field(default_factory=list)

    @property
    def mismatches(self) -> int:
        return sum(f.mismatches for f in self.features)

    def to_json(self) -> str:
        return report_json(self, ("mismatch_rate", "missing_rate", "mean_abs_delta"))

    @classmethod
    def from_json(cls, text: str) -> Report:
        return report_load(cls, FeatureConsistency, text)


def compare(served: Sequence[Served], offline: Sequence[dict[str, Any]]) -> Report:
    """Compare each served vector with its offline recomputation (same order); return the
    report, with up to 20 examples of mismatches."""
    per_feature: dict[str, FeatureConsistency] = {}
    examples: list[dict] = []
    for sample, recomputed in zip(served, offline, strict=True):
        view = VIEWS_BY_NAME[sample.view]
        for f in view.features:
            stats = per_feature.setdefault(f.name, FeatureConsistency(f.name, view.name))
            s, o = sample.values.get(f.name), recomputed.get(f.name)
            stats.sampled += 1
            if s is None and o is not None:
                stats.missing += 1
            if s is not None and o is not None:
                stats.both_present += 1
                stats.delta_sum += abs(float(s) - float(o))
            if not same(s, o):
                stats.mismatches += 1
                if len(examples) < 20:
                    examples.append(
                        {
                            "feature": f.name,
                            "key": list(sample.key),
                            "at": datetime.fromtimestamp(sample.at / 1e6, UTC).isoformat(),
                            "served": s,
                            "offline": o,
                        }
                    )
    return Report(
        created_at=time.time(),
        sampled=len(served),
        features=sorted(per_feature.values(), key=lambda f: (f.view, f.name)),
        examples=examples,
    )


def online_sample(
    config: FeatureConfig, *, keys: dict[str, list[tuple[str, ...]]], at: int | None = None
) -> list[Served]:
    """Read each view's features online for ``keys`` (view name -> entity keys), one call per
    view, as a server would; stamp every vector with the read instant (µs)."""
    store = feature_store(config)
    served: list[Served] = []
    for view_name, entity_keys in keys.items():
        if not entity_keys:
            continue
        view = VIEWS_BY_NAME[view_name]
        now = at if at is not None else int(time.time() * 1_000_000)
        response = store.get_online_features(
            features=[f"{view.name}:{f.name}" for f in view.features],
            entity_rows=[dict(zip(view.join_keys, key, strict=True)) for key in entity_keys],
        ).to_dict()
        for i, key in enumerate(entity_keys):
            values = {f.name: _plain(response[f.name][i]) for f in view.features}
            served.append(Served(view.name, tuple(key), now, values))
    return served


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def sample_keys(
    config: FeatureConfig, *, per_view: int, seed: int = 0, views: Sequence[View] = STREAM_VIEWS
) -> dict[str, list[tuple[str, ...]]]:
    """Return up to ``per_view`` entity keys per stream view, drawn from the keys its archived
    rows hold (plus one key that never occurred, so unknown entities are checked too)."""
    from features.offline import view_keys

    rng = random.Random(seed)  # noqa: S311 (a reproducible sample, not a secret)
    chosen: dict[str, list[tuple[str, ...]]] = {}
    for view in views:
        known = sorted(view_keys(config, view))
        picked = rng.sample(known, min(per_view, len(known)))
        picked.append(tuple("never-seen" for _ in view.join_keys))
        chosen[view.name] = picked
    return chosen


def consistency_run(config: FeatureConfig, *, per_view: int = 200, seed: int = 0) -> Report:
    """Sample served vectors online, recompute them offline as of the same instant, compare,
    save the report as the latest (``last_report``) and return it."""
    from features.offline import recompute_as_of

    served = online_sample(config, keys=sample_keys(config, per_view=per_view, seed=seed))
    offline = recompute_as_of(config, [(s.view, s.key, s.at) for s in served])
    report = compare(served, offline)
    report_save(config, REPORT_FILE, report.to_json())
    return report


def last_report(config: FeatureConfig) -> Report | None:
    """Return the latest saved report, or ``None`` when none was run."""
    return report_last(config, REPORT_FILE, Report)
