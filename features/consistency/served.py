"""Served vs offline: does what the scorer served equal what a model trains on?

For each vector the scorer logged (``features.served_log``), read the training set of the same
request (``features.training.training_set`` as of its request time: the point-in-time join every
model of the project trains on) and report per feature the mismatch, missing and extra rates and
the SMAPE; degraded vectors (served without the store) are counted apart. Its target is 0
mismatches among the vectors the server marked exact: any is training/serving skew.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pandas import NA

from features.consistency.reports import (
    report_json,
    report_last,
    report_load,
    report_save,
    same,
    share,
)
from features.definitions import FRAUD_SCORING_V1
from features.store import FeatureConfig
from features.stream_serving import EXACT, STALE

SERVED_REPORT_FILE = "served-consistency.json"
# Feast's status of a stored feature the server could not read (a degraded vector).
UNSERVED_STATUS = "INVALID"


@dataclass
class ServedFeature:
    """One feature over the vectors compared: how often its served value differed from the
    training set's (``mismatches``), was missing where offline had one (``missing``), was there
    where offline had none (``extra``), and the sum of SMAPE terms where both had one."""

    name: str
    compared: int = 0
    mismatches: int = 0
    missing: int = 0
    extra: int = 0
    both_present: int = 0
    smape_sum: float = 0.0

    @property
    def mismatch_rate(self) -> float:
        return share(self.mismatches, self.compared)

    @property
    def missing_rate(self) -> float:
        return share(self.missing, self.compared)

    @property
    def extra_rate(self) -> float:
        return share(self.extra, self.compared)

    @property
    def smape(self) -> float:
        """Symmetric mean absolute percentage error over the vectors where both sides had a
        value, as a share (0 to 2): |s - o| / ((|s| + |o|) / 2), 0 where both are 0."""
        return share(self.smape_sum, self.both_present)


@dataclass
class ServedReport:
    """Served vectors against their offline recomputation: how many were read (``vectors``),
    how many were degraded (served without the store: set aside, not compared), how many of the
    compared ones differ on at least one feature, per feature figures and examples.

    Split by what the server said of each compared vector (``features.stream_serving``):
    ``exact`` ones (vouched for: any of them differing, ``exact_mismatched``, is a bug), ``stale``
    ones (served while the stream processor or a batch publication lagged: expected to differ
    sometimes; ``stale_lag_p99_ms`` says how far behind) and ``unmarked`` ones (logged by a
    server that did not check)."""

    created_at: float
    since: str | None
    vectors: int
    degraded: int
    mismatched_vectors: int
    features: list[ServedFeature] = field(default_factory=list)
    examples: list[dict] = field(default_factory=list)
    exact: int = 0
    exact_mismatched: int = 0
    stale: int = 0
    stale_mismatched: int = 0
    stale_lag_p99_ms: float | None = None

    @property
    def compared(self) -> int:
        return self.vectors - self.degraded

    @property
    def unmarked(self) -> int:
        return self.compared - self.exact - self.stale

    @property
    def mismatched_share(self) -> float:
        return share(self.mismatched_vectors, self.compared)

    @property
    def stale_share(self) -> float:
        return share(self.stale, self.compared)

    @property
    def exact_mismatched_share(self) -> float:
        return share(self.exact_mismatched, self.exact)

    def to_json(self) -> str:
        return report_json(self, ("mismatch_rate", "missing_rate", "extra_rate", "smape"))

    @classmethod
    def from_json(cls, text: str) -> ServedReport:
        return report_load(cls, ServedFeature, text)


def _scalar(value: Any) -> Any:
    """Return a frame's cell as a plain Python value, its missing markers (None, NaN, pandas'
    NA) as ``None``."""
    if value is None or value is NA:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    return value.item() if hasattr(value, "item") else value


def _smape_term(served: float, offline: float) -> float:
    scale = (abs(served) + abs(offline)) / 2
    return abs(served - offline) / scale if scale else 0.0


def served_compare(logged: Any, offline: Any, names: Sequence[str]) -> ServedReport:
    """Compare ``logged`` (``features.served_log.logged_features`` rows) with ``offline`` (the
    training set of the same rows, same order) on the stored features ``names``; degraded
    vectors (a feature with status ``UNSERVED_STATUS``) are counted and set aside."""
    per_feature = {name: ServedFeature(name) for name in names}
    examples: list[dict] = []
    degraded = mismatched = 0
    marked = {EXACT: 0, STALE: 0}
    marked_mismatched = {EXACT: 0, STALE: 0}
    lags: list[float] = []
    served_rows = logged.to_dict("records")
    offline_rows = offline.to_dict("records")
    for served, recomputed in zip(served_rows, offline_rows, strict=True):
        if any(served.get(f"{name}__status") == UNSERVED_STATUS for name in names):
            degraded += 1
            continue
        consistency = _scalar(served.get("consistency"))
        if consistency in marked:
            marked[consistency] += 1
        if consistency == STALE and _scalar(served.get("consistency_lag_ms")) is not None:
            lags.append(float(served["consistency_lag_ms"]))
        differs = False
        for name in names:
            stats = per_feature[name]
            s, o = _scalar(served[name]), _scalar(recomputed[name])
            stats.compared += 1
            if s is None and o is not None:
                stats.missing += 1
            elif s is not None and o is None:
                stats.extra += 1
            elif s is not None:
                stats.both_present += 1
                stats.smape_sum += _smape_term(float(s), float(o))
            if not same(s, o):
                stats.mismatches += 1
                differs = True
                if len(examples) < 20:
                    examples.append(
                        {
                            "feature": name,
                            "event_id": served["event_id"],
                            "request_time": served["request_time"].isoformat(),
                            "served": s,
                            "offline": o,
                            "consistency": consistency,
                        }
                    )
        mismatched += differs
        if differs and consistency in marked:
            marked_mismatched[consistency] += 1
    # The vouched-for ones first: an exact vector that differs is the one to look at.
    examples.sort(key=lambda e: e["consistency"] != EXACT)
    return ServedReport(
        created_at=time.time(),
        since=None,
        vectors=len(served_rows),
        degraded=degraded,
        mismatched_vectors=mismatched,
        features=list(per_feature.values()),
        examples=examples,
        exact=marked[EXACT],
        exact_mismatched=marked_mismatched[EXACT],
        stale=marked[STALE],
        stale_mismatched=marked_mismatched[STALE],
        stale_lag_p99_ms=_quantile(lags, 0.99),
    )


def _quantile(values: list[float], q: float) -> float | None:
    """Return the ``q`` quantile of ``values`` (nearest rank), ``None`` when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def served_consistency_run(
    config: FeatureConfig,
    *,
    since: datetime | None = None,
    limit: int | None = None,
    seed: int = 0,
    service: str = FRAUD_SCORING_V1.name,
) -> ServedReport:
    """Compare the vectors ``service`` logged (those requested at or after ``since``; a
    reproducible sample of ``limit`` of them when given) with the training set of the same
    requests (``features.training.training_set`` at each payment's instant and entity keys as
    served), save the report as the latest (``last_served_report``) and return it. Read only
    but for the report file."""
    import pandas as pd

    from features.definitions import FEATURE_SERVICES
    from features.served_log import log_layout, logged_features
    from features.training import service_features, training_set

    logged = logged_features(config, service)
    if since is not None:
        logged = logged[logged["request_time"] >= pd.Timestamp(since)]
    if limit is not None and len(logged) > limit:
        rng = random.Random(seed)  # noqa: S311 (a reproducible sample, not a secret)
        logged = logged.iloc[sorted(rng.sample(range(len(logged)), limit))]
    logged = logged.reset_index(drop=True)
    # The instant the server evaluated the features at: the payment's own time; a log written
    # before it was recorded falls back on the time it was scored.
    spine = pd.DataFrame({"event_timestamp": logged["occurred_at"].fillna(logged["request_time"])})
    for key in log_layout(config, service).join_keys:
        spine[key] = logged[key]
    offline = training_set(config, spine, service)
    names = [name for name, _ in service_features(FEATURE_SERVICES[service])]
    report = served_compare(logged, offline, names)
    report.since = since.isoformat() if since is not None else None
    report_save(config, SERVED_REPORT_FILE, report.to_json())
    return report


def last_served_report(config: FeatureConfig) -> ServedReport | None:
    """Return the latest saved served-vs-offline report, or ``None`` when none was run."""
    return report_last(config, SERVED_REPORT_FILE, ServedReport)
