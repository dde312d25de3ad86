"""``python manage.py feature_consistency``: compare served features with the offline
recomputation and print the per-feature report (saved for ``/metrics/features``)."""

from django.core.management.base import BaseCommand, CommandError

from features.consistency import consistency_run
from features.store import FeatureConfig


class Command(BaseCommand):
    help = "Sample online feature vectors, recompute them offline as of the same instant, report."

    def add_arguments(self, parser):
        parser.add_argument("--per-view", type=int, default=200, help="entities per stream view")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--fail-on-mismatch", action="store_true", help="exit non-zero on any mismatch"
        )

    def handle(self, *args, per_view: int, seed: int, fail_on_mismatch: bool, **options):
        report = consistency_run(FeatureConfig.from_settings(), per_view=per_view, seed=seed)
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
