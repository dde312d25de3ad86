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

from features.consistency import last_report, last_served_report
from features.materialize import feature_view_staleness
from features.store import FeatureConfig
from frontend.access import metrics_access


def _gauge(name: str, help_text: str, samples: list[tuple[str, float]]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
    lines += [f"{name}{labels} {value:.6g}" for labels, value in samples]
    return lines


def _report_lines(
    prefix: str,
    report,
    what: str,
    totals: list[tuple[str, str, float]],
    per_feature: list[tuple[str, str]],
) -> list[str]:
    """Return the gauges of one saved report: ``<prefix>_age_seconds``, one gauge per total
    (name, help, value) and one per feature figure (attribute, help), labelled by feature."""
    lines = _gauge(
        f"{prefix}_age_seconds",
        f"Seconds since the last {what} report.",
        [("", time.time() - report.created_at)],
    )
    for name, help_text, value in totals:
        lines += _gauge(f"{prefix}_{name}", help_text, [("", value)])
    for field, help_text in per_feature:
        lines += _gauge(
            f"{prefix}_{field}",
            help_text,
            [(f'{{feature="{f.name}"}}', getattr(f, field)) for f in report.features],
        )
    return lines


@metrics_access
def metrics(request: HttpRequest) -> HttpResponse:
    config = FeatureConfig.from_settings()
    staleness = feature_view_staleness(config)
    lines = _gauge(
        "feature_view_staleness_seconds",
        "Seconds since the view's newest row (stream) or last materialisation (batch).",
        [(f'{{view="{v}"}}', s) for v, s in sorted(staleness.items()) if s is not None],
    )
    report = last_report(config)
    if report is not None:
        lines += _report_lines(
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
                ("missing_rate", "Share of sampled values served missing where offline has one."),
                ("mean_abs_delta", "Mean absolute difference where both values are present."),
            ],
        )
    served = last_served_report(config)
    if served is not None:
        lines += _report_lines(
            "feature_served",
            served,
            "served-vs-offline",
            [
                ("vectors", "Logged vectors the last served report read.", served.vectors),
                ("degraded", "Of them, degraded vectors (set aside).", served.degraded),
                (
                    "mismatched_share",
                    "Share of compared vectors that differ from their training row on any feature.",
                    served.mismatched_share,
                ),
                ("exact", "Of them, vectors the scorer marked exact.", served.exact),
                (
                    "exact_mismatched",
                    "Vectors marked exact that differ from their training row (a bug when > 0).",
                    served.exact_mismatched,
                ),
                ("stale", "Vectors the scorer marked stale.", served.stale),
                ("stale_share", "Share of compared vectors marked stale.", served.stale_share),
            ],
            [
                ("mismatch_rate", "Share of served values that differ from the training row's."),
                ("missing_rate", "Share of values served missing where the training row has one."),
                ("extra_rate", "Share of values served where the training row has none."),
                ("smape", "Symmetric mean absolute percentage error where both have a value."),
            ],
        )
    return HttpResponse("\n".join(lines) + "\n", content_type="text/plain; version=0.0.4")
