"""``python manage.py training_set --spine spine.parquet --out training.parquet``: a point-in-time
training set (``features.training.training_set``) for a spine of entities and instants."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
from django.core.management.base import BaseCommand, CommandError

from features.definitions import FEATURE_SERVICES, FRAUD_SCORING_V1
from features.store import FeatureConfig
from features.training import training_set


class Command(BaseCommand):
    help = "Join every spine row with its features as of its event_timestamp."

    def add_arguments(self, parser):
        parser.add_argument(
            "--spine",
            type=Path,
            required=True,
            help="Parquet: event_timestamp, card_id, rider_id, zone_id[, driver_id, labels...]",
        )
        parser.add_argument("--out", type=Path, required=True, help="Parquet file to write")
        parser.add_argument(
            "--service", default=FRAUD_SCORING_V1.name, choices=sorted(FEATURE_SERVICES)
        )
        parser.add_argument(
            "--history",
            type=Path,
            default=None,
            help="event history the stream views are evaluated over "
            "(default: the stream processor's archive)",
        )

    def handle(self, *args, spine: Path, out: Path, service: str, history: Path | None, **options):
        if not spine.is_file():
            raise CommandError(f"{spine}: no such file")
        frame = pd.read_parquet(spine)
        if "event_timestamp" not in frame.columns:
            raise CommandError(f"{spine}: the spine needs an event_timestamp column")
        began = time.perf_counter()
        if history is not None and not history.is_dir():
            raise CommandError(f"{history}: no such directory")
        result = training_set(
            FeatureConfig.from_settings(), frame, service=service, history=history
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        result.to_parquet(out, index=False)
        self.stdout.write(
            f"training set: {len(result)} rows, {len(result.columns)} columns "
            f"in {time.perf_counter() - began:.2f} s -> {out}"
        )
