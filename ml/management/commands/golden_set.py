"""``python manage.py golden_set``: make the golden set the offline gates test every candidate
on (``ml.golden``), from a simulated history."""

from __future__ import annotations

import io
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path

from django.core.management import call_command
from django.core.management.base import BaseCommand

from features.definitions import FEATURE_SERVICES, FRAUD_SCORING_V1
from features.repo import apply_repo
from features.store import FeatureConfig, feature_store
from ml.datasets import bootstrap_dataset
from ml.golden import golden_path, golden_sample, golden_write
from ml.train import model_features


class Command(BaseCommand):
    help = "Write the golden set (model inputs of simulated payments) the offline gates use."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=float, default=4.0)
        parser.add_argument("--seed", type=int, default=3)
        parser.add_argument("--riders", type=int, default=300)
        parser.add_argument("--rows", type=int, default=300)
        parser.add_argument(
            "--service",
            choices=sorted(FEATURE_SERVICES),
            default=FRAUD_SCORING_V1.name,
            help="the feature service whose model inputs it holds",
        )
        parser.add_argument("--out", type=Path, help="default: ml/golden/<service>.csv")

    def handle(self, *args, **options):
        service = options["service"]
        with tempfile.TemporaryDirectory(prefix="golden-") as tmp:
            history = Path(tmp) / "history"
            call_command(
                "simulate", "history", days=options["days"], seed=options["seed"],
                riders=options["riders"], drivers=40, label_delay_median_days=0.25,
                out=history, stdout=io.StringIO(),
            )  # fmt: skip
            config = FeatureConfig(
                project=f"golden{uuid.uuid4().hex[:8]}",
                registry_url=f"sqlite:///{Path(tmp) / 'registry.sqlite3'}",
                online="sqlite",
                data_dir=Path(tmp) / "features",
            )
            apply_repo(config)
            try:
                frame = bootstrap_dataset(
                    config, history, maturity=timedelta(days=1), service=service
                )
            finally:
                feature_store(config).teardown()
        golden = golden_sample(
            frame, model_features(service), rows=options["rows"], seed=options["seed"]
        )
        out = options["out"] or golden_path(service)
        golden_write(golden, out)
        self.stdout.write(
            f"golden set: {len(golden)} payments ({int(golden['label'].sum())} fraud) to {out}"
        )
