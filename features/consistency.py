"""Consistency report: do the values served online equal the offline recomputation?

For a sample of served feature vectors (entity keys, the instant they were served, the values),
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

That check cannot see what the scorer was served: it reads the online store after the fact.
``served_consistency_run`` does: for each vector the scorer logged (``features.served_log``), the
training set of the same request (``features.training.training_set`` as of its request time,
the point-in-time join models train on), and per feature the mismatch, missing and extra rates
and the SMAPE; degraded vectors (served without the store) are counted apart. Its target is 0
mismatches too: any is training/serving skew.

The last report of each is kept as JSON under the data directory and exposed as metrics
(``features.metrics``).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from pandas import NA

from features.definitions import STREAM_VIEWS, VIEWS_BY_NAME, View
from features.store import FeatureConfig, feature_store
from features.stream_serving import EXACT, STALE

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
        return _share(self.mismatches, self.sampled)

    @property
    def missing_rate(self) -> float:
        return _share(self.missing, self.sampled)

    @property
    def mean_abs_delta(self) -> float:
        return _share(self.delta_sum, self.both_present)


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
        return _report_json(self, ("mismatch_rate", "missing_rate", "mean_abs_delta"))

    @classmethod
    def from_json(cls, text: str) -> Report:
        return _report_load(cls, FeatureConsistency, text)


def _share(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


def _report_json(report: Any, rates: Sequence[str]) -> str:
    """Return ``report`` as JSON, each feature with its derived ``rates`` beside its counts
    (for readers of the file; ``_report_load`` derives them again)."""
    data = asdict(report)
    for item, feature in zip(data["features"], report.features, strict=True):
        item.update({rate: getattr(feature, rate) for rate in rates})
    return json.dumps(data, indent=2, default=str)


def _report_load(cls: type, feature_cls: type, text: str) -> Any:
    """Return the ``cls`` report saved as ``text`` by ``_report_json``, its features as
    ``feature_cls``."""
    data = json.loads(text)
    counts = set(feature_cls.__dataclass_fields__)
    features = [
        feature_cls(**{k: v for k, v in f.items() if k in counts}) for f in data["features"]
    ]
    # A field added since the file was written keeps its default.
    totals = {
        name: data[name]
        for name in cls.__dataclass_fields__
        if name not in ("features", "examples") and name in data
    }
    return cls(**totals, features=features, examples=data.get("examples", []))


def same(served: Any, offline: Any) -> bool:
    """Return whether two feature values agree (floats to 1e-9 relative)."""
    if served is None or offline is None:
        return served is None and offline is None
    if isinstance(served, float) or isinstance(offline, float):
        return math.isclose(float(served), float(offline), rel_tol=1e-9, abs_tol=1e-12)
    return served == offline


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
    _report_save(config, REPORT_FILE, report.to_json())
    return report


def last_report(config: FeatureConfig) -> Report | None:
    """Return the latest saved report, or ``None`` when none was run."""
    path = config.data_dir / REPORT_FILE
    return Report.from_json(path.read_text()) if path.exists() else None


# Served vs offline: what the server logged, against what a training set reads for the same
# request (``features.training.training_set`` as of the request time: the point-in-time join
# every model of the project trains on).

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
        return _share(self.mismatches, self.compared)

    @property
    def missing_rate(self) -> float:
        return _share(self.missing, self.compared)

    @property
    def extra_rate(self) -> float:
        return _share(self.extra, self.compared)

    @property
    def smape(self) -> float:
        """Symmetric mean absolute percentage error over the vectors where both sides had a
        value, as a share (0 to 2): |s - o| / ((|s| + |o|) / 2), 0 where both are 0."""
        return _share(self.smape_sum, self.both_present)


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
        return _share(self.mismatched_vectors, self.compared)

    @property
    def stale_share(self) -> float:
        return _share(self.stale, self.compared)

    @property
    def exact_mismatched_share(self) -> float:
        return _share(self.exact_mismatched, self.exact)

    def to_json(self) -> str:
        return _report_json(self, ("mismatch_rate", "missing_rate", "extra_rate", "smape"))

    @classmethod
    def from_json(cls, text: str) -> ServedReport:
        return _report_load(cls, ServedFeature, text)


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
    service: str = "fraud_scoring_v1",
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
    _report_save(config, SERVED_REPORT_FILE, report.to_json())
    return report


def last_served_report(config: FeatureConfig) -> ServedReport | None:
    """Return the latest saved served-vs-offline report, or ``None`` when none was run."""
    path = config.data_dir / SERVED_REPORT_FILE
    return ServedReport.from_json(path.read_text()) if path.exists() else None


def _report_save(config: FeatureConfig, name: str, text: str) -> None:
    path = config.data_dir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)
