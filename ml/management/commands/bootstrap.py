"""``python manage.py bootstrap``: train the first model on simulated history and deploy it as
champion, so the scorer has a model from its first minute (``make demo`` runs it)."""

from __future__ import annotations

import io
import json
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from fraud.models import CHECKPOINTS
from fraud.scorer.settings import checkpoint_service
from ml.selectors import champion_exists
from ml.services import ModelRejected, model_bootstrap
from ml.train import DEFAULT_THRESHOLDS, TrainParams


class Command(BaseCommand):
    help = "Simulate history, train a LightGBM model on it, register it and deploy it as champion."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=float, default=14.0, help="simulated days of history")
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--riders", type=int, default=500)
        parser.add_argument("--drivers", type=int, default=60)
        parser.add_argument(
            "--label-delay-days",
            type=float,
            default=1.0,
            help="median chargeback delay in the simulated history",
        )
        parser.add_argument(
            "--maturity-days",
            type=float,
            default=3.0,
            help="leave out payments younger than this at the history's end (labels not in yet)",
        )
        parser.add_argument("--review-threshold", type=float, default=DEFAULT_THRESHOLDS["review"])
        parser.add_argument(
            "--decline-threshold", type=float, default=DEFAULT_THRESHOLDS["decline"]
        )
        parser.add_argument("--rounds", type=int, default=TrainParams.num_boost_round)
        parser.add_argument("--num-threads", type=int, default=TrainParams.num_threads)
        parser.add_argument(
            "--if-no-champion",
            action="store_true",
            help="do nothing when a champion is already deployed",
        )
        parser.add_argument("--no-promote", action="store_true", help="register only")
        parser.add_argument(
            "--checkpoint",
            choices=CHECKPOINTS,
            default="authorization",
            help="the checkpoint whose champion it trains: the payment at authorization, or "
            "the fare at the trip's end with its driver (capture)",
        )

    def handle(self, *args, **options):
        checkpoint = options["checkpoint"]
        if options["if_no_champion"] and champion_exists(checkpoint=checkpoint):
            self.stdout.write(
                f"bootstrap: the {checkpoint} champion is deployed already; nothing to do"
            )
            return
        began = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="bootstrap-") as tmp:
            history = Path(tmp) / "history"
            call_command(
                "simulate",
                "history",
                days=options["days"],
                seed=options["seed"],
                riders=options["riders"],
                drivers=options["drivers"],
                label_delay_median_days=options["label_delay_days"],
                out=history,
                stdout=io.StringIO(),  # bootstrap prints its own summary
            )
            try:
                model = model_bootstrap(
                    history=history,
                    work_dir=Path(tmp),
                    maturity=timedelta(days=options["maturity_days"]),
                    snapshot_every=timedelta(seconds=settings.FEATURES_MATERIALIZE_EVERY_SECONDS),
                    params=TrainParams(
                        num_boost_round=options["rounds"],
                        seed=options["seed"],
                        num_threads=options["num_threads"],
                    ),
                    thresholds={
                        "review": options["review_threshold"],
                        "decline": options["decline_threshold"],
                    },
                    promote=not options["no_promote"],
                    service=checkpoint_service(checkpoint),
                )
            except ModelRejected as exc:
                raise CommandError(str(exc)) from exc
        metrics = model.metrics
        self.stdout.write(
            f"bootstrap: {checkpoint} model {model.version} "
            f"({'champion' if not options['no_promote'] else 'registered'}) in "
            f"{time.perf_counter() - began:.1f} s; trained on {model.training_rows} rows "
            f"{model.data_start:%Y-%m-%d}..{model.data_end:%Y-%m-%d}; holdout "
            f"{metrics['rows']} rows, {metrics['positives']} fraud: "
            f"AUC-ROC {_num(metrics['auc_roc'])}, AUC-PR {_num(metrics['auc_pr'])}"
        )
        self.stdout.write(json.dumps(metrics["at_thresholds"], indent=2))


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
