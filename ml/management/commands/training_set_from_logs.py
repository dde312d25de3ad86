"""``python manage.py training_set_from_logs --out FILE``: write the log-and-wait training set
(logged features JOIN labels, nothing recomputed) to a Parquet file."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from django.core.management.base import BaseCommand

from features.store import FeatureConfig
from fraud.scorer.settings import authorization_service
from ml.datasets import logged_dataset
from ml.selectors import labels_as_of


class Command(BaseCommand):
    help = "Write the served feature logs joined with their labels to a Parquet file."

    def add_arguments(self, parser):
        parser.add_argument("--out", type=Path, required=True)
        parser.add_argument(
            "--maturity-days",
            type=float,
            default=0.0,
            help="leave out unlabelled payments younger than this (their labels may still come)",
        )

    def handle(self, *args, out: Path, maturity_days: float, **options):
        frame = logged_dataset(
            FeatureConfig.from_settings(),
            labels=labels_as_of(),
            maturity=timedelta(days=maturity_days),
            service=authorization_service(),
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        frame.to_parquet(tmp, index=False)
        tmp.replace(out)
        positives = int(frame["label"].sum())
        self.stdout.write(f"wrote {len(frame)} rows ({positives} labelled fraud) to {out}")
