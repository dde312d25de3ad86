"""``python manage.py feature_consistency``: compare served features with the offline
recomputation and print the per-feature report (saved for ``/metrics/features``).

Without ``--served``: a sample of the online store now against the DuckDB engine as of now
(does the online store hold what the offline history computes?). With ``--served``: every vector
the scorer logged (since ``--since``) against the training set of the same request (was the
model served what it is trained on?)."""

from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError

from features.consistency import consistency_run, served_consistency_run
from features.management.arguments import duration_parse, instant_parse
from features.store import FeatureConfig


def since_value(text: str) -> datetime:
    """Return the instant ``text`` names: an ISO date-time (UTC unless it says otherwise) or a
    span back from now (``90m``, ``6h``, ``2d``)."""
    try:
        return datetime.now(UTC) - duration_parse(text)
    except ValueError:
        pass
    try:
        return instant_parse(text)
    except ValueError:
        raise ValueError(
            f"--since takes an ISO date-time or a span like 6h, not {text!r}"
        ) from None


class Command(BaseCommand):
    help = "Compare features as served with their offline recomputation; report per feature."

    def add_arguments(self, parser):
        parser.add_argument(
            "--served", action="store_true",
            help="compare the scorer's logged vectors with their training-set rows",
        )  # fmt: skip
        parser.add_argument("--since", default=None, help="with --served: ISO time or 6h, 2d")
        parser.add_argument("--limit", type=int, default=None, help="with --served: sample size")
        parser.add_argument("--per-view", type=int, default=200, help="entities per stream view")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--fail-on-mismatch",
            action="store_true",
            help="exit non-zero on any mismatch (with --served: of a vector marked exact)",
        )

    def handle(self, *args, served: bool, per_view: int, seed: int, fail_on_mismatch, **options):
        config = FeatureConfig.from_settings()
        if served:
            self._served(config, options["since"], options["limit"], seed, fail_on_mismatch)
            return
        report = consistency_run(config, per_view=per_view, seed=seed)
        self.stdout.write(f"sampled vectors: {report.sampled}")
        self.stdout.write(f"{'feature':<34} {'mismatch':>9} {'missing':>8} {'mean |d|':>10}")
        for f in report.features:
            self.stdout.write(
                f"{f.name:<34} {f.mismatch_rate:9.4f} {f.missing_rate:8.4f} "
                f"{f.mean_abs_delta:10.4g}"
            )
        for example in report.examples[:5]:
            self.stdout.write(f"mismatch: {example}")
        if fail_on_mismatch and report.mismatches:
            raise CommandError(f"{report.mismatches} mismatched values")

    def _served(self, config, since_text, limit, seed, fail_on_mismatch) -> None:
        try:
            since = since_value(since_text) if since_text else None
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        report = served_consistency_run(config, since=since, limit=limit, seed=seed)
        self.stdout.write(
            f"served vectors: {report.vectors} ({report.degraded} degraded, set aside); "
            f"{report.mismatched_vectors} of {report.compared} differ from their training row "
            f"({report.mismatched_share:.1%})"
        )
        lag = report.stale_lag_p99_ms
        self.stdout.write(
            f"exact: {report.exact}, {report.exact_mismatched} differ; "
            f"stale: {report.stale} ({report.stale_share:.2%}), {report.stale_mismatched} differ"
            + (f", lag p99 {lag:.0f} ms" if lag is not None else "")
            + f"; unmarked: {report.unmarked}"
        )
        self.stdout.write(
            f"{'feature':<34} {'mismatch':>9} {'missing':>8} {'extra':>8} {'SMAPE':>8}"
        )
        for f in sorted(report.features, key=lambda f: (-f.mismatch_rate, f.name)):
            self.stdout.write(
                f"{f.name:<34} {f.mismatch_rate:9.4f} {f.missing_rate:8.4f} "
                f"{f.extra_rate:8.4f} {f.smape:8.4f}"
            )
        for example in report.examples[:5]:
            self.stdout.write(f"mismatch: {example}")
        # A stale vector may differ: it says so. One the server vouched for may not.
        if fail_on_mismatch and report.exact_mismatched:
            raise CommandError(
                f"{report.exact_mismatched} served vectors marked exact differ from their "
                "training rows"
            )
