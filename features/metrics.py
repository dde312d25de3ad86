"""``/metrics/features``: the feature platform's gauges in Prometheus' text format.

- ``feature_view_staleness_seconds{view}``: for a stream view, now minus its newest row's event
  time; for a batch view, now minus its last materialisation;
- ``feature_consistency_{mismatch_rate,missing_rate,mean_abs_delta}{feature}`` and
  ``feature_consistency_sampled``: the last consistency report (``manage.py
  feature_consistency``), with ``feature_consistency_age_seconds`` saying how old it is;
- ``feature_served_{mismatch_rate,missing_rate,extra_rate,smape}{feature}``,
  ``feature_served_vectors``, ``feature_served_degraded``, ``feature_served_mismatched_share``,
  ``feature_served_{exact,exact_mismatched,stale,stale_share}`` and
  ``feature_served_age_seconds``: the last served-vs-offline report (``manage.py
  feature_consistency --served``).
"""

from __future__ import annotations

import time

from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from events.telemetry import exposition
from features.consistency import last_report, last_served_report
from features.materialize import feature_view_staleness
from features.store import FeatureConfig
from frontend.access import metrics_access


def _gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_text, value=value)


def _report_gauges(
    prefix: str,
    report,
    what: str,
    totals: list[tuple[str, str, float]],
    per_feature: list[tuple[str, str]],
) -> list[GaugeMetricFamily]:
    """Return the gauges of one saved report: ``<prefix>_age_seconds``, one gauge per total
    (name, help, value) and one per feature figure (attribute, help), labelled by feature."""
    gauges = [
        _gauge(
            f"{prefix}_age_seconds",
            f"Seconds since the last {what} report.",
            time.time() - report.created_at,
        )
    ]
    gauges += [_gauge(f"{prefix}_{name}", help_text, value) for name, help_text, value in totals]
    for field, help_text in per_feature:
        family = GaugeMetricFamily(f"{prefix}_{field}", help_text, labels=["feature"])
        for feature in report.features:
            family.add_metric([feature.name], getattr(feature, field))
        gauges.append(family)
    return gauges


class FeatureCollector(Collector):
    """The feature platform's gauges, read from the store and the saved reports at each
    scrape."""

    def collect(self):
        config = FeatureConfig.from_settings()
        staleness = GaugeMetricFamily(
            "feature_view_staleness_seconds",
            "Seconds since the view's newest row (stream) or last materialisation (batch).",
            labels=["view"],
        )
        for view, seconds in sorted(feature_view_staleness(config).items()):
            if seconds is not None:
                staleness.add_metric([view], seconds)
        yield staleness
        report = last_report(config)
        if report is not None:
            yield from _report_gauges(
                "feature_consistency",
                report,
                "consistency",
                [
                    (
                        "sampled",
                        "Served feature vectors the last consistency report recomputed offline.",
                        report.sampled,
                    )
                ],
                [
                    (
                        "mismatch_rate",
                        "Share of sampled values that differ from the offline recomputation.",
                    ),
                    (
                        "missing_rate",
                        "Share of sampled values served missing where offline has one.",
                    ),
                    ("mean_abs_delta", "Mean absolute difference where both values are present."),
                ],
            )
        served = last_served_report(config)
        if served is not None:
            yield from _report_gauges(
                "feature_served",
                served,
                "served-vs-offline",
                [
                    ("vectors", "Logged vectors the last served report read.", served.vectors),
                    ("degraded", "Of them, degraded vectors (set aside).", served.degraded),
                    (
                        "mismatched_share",
                        "Share of compared vectors unlike their training row in any feature.",
                        served.mismatched_share,
                    ),
                    ("exact", "Of them, vectors the scorer marked exact.", served.exact),
                    (
                        "exact_mismatched",
                        "Vectors marked exact differing from their training row (a bug when > 0).",
                        served.exact_mismatched,
                    ),
                    ("stale", "Vectors the scorer marked stale.", served.stale),
                    ("stale_share", "Share of compared vectors marked stale.", served.stale_share),
                ],
                [
                    (
                        "mismatch_rate",
                        "Share of served values that differ from the training row's.",
                    ),
                    (
                        "missing_rate",
                        "Share of values served missing where the training row has one.",
                    ),
                    ("extra_rate", "Share of values served where the training row has none."),
                    ("smape", "Symmetric mean absolute percentage error where both have a value."),
                ],
            )


FEATURES = CollectorRegistry(auto_describe=False)
FEATURES.register(FeatureCollector())


@metrics_access
def metrics(request: HttpRequest) -> HttpResponse:
    return HttpResponse(exposition(FEATURES), content_type=CONTENT_TYPE_LATEST)
