"""``python manage.py backtest FILE --train-start DATE``: what the platform would have done with a
team's own labelled payments (``ml.backtest``): the file through the feature definitions
offline, a model chosen and trained on one window, judged on a later one; a JSON report and a
self-contained HTML page under ``--out``; ``--register`` keeps the model as a candidate."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from features.definitions import FRAUD_SCORING_V1, FRAUD_SCORING_V2
from ml.backtest import (
    AUTHORIZATION,
    BacktestError,
    Options,
    Split,
    day_start,
    report_html,
    run_backtest,
)


class Command(BaseCommand):
    help = "Backtest the platform's features and model on a file of labelled payments."

    def add_arguments(self, parser):
        parser.add_argument(
            "file",
            type=Path,
            help="CSV or Parquet of labelled payments, or a simulate history directory",
        )
        parser.add_argument("--train-start", required=True, help="first training day (UTC)")
        parser.add_argument("--train-days", type=int, default=7)
        parser.add_argument("--gap-days", type=int, default=7)
        parser.add_argument("--test-days", type=int, default=7)
        parser.add_argument(
            "--label-delay-days",
            type=float,
            default=7.0,
            help="a fraud label is known this long after its payment (default 7)",
        )
        parser.add_argument(
            "--drop-known-cards",
            action="store_true",
            help="remove from each test day the cards known fraudulent before it",
        )
        parser.add_argument(
            "--budget", type=int, default=100, help="reviews a day the threshold is set for"
        )
        parser.add_argument(
            "--precision", type=float, default=None, help="set the threshold for this precision"
        )
        parser.add_argument("--k", type=int, default=100, help="Card Precision@k (default 100)")
        parser.add_argument(
            "--snapshot-hours",
            type=float,
            default=24.0,
            help="how often the batch views are snapshotted over the file (default 24)",
        )
        parser.add_argument(
            "--service",
            default=FRAUD_SCORING_V2.name,
            choices=[FRAUD_SCORING_V1.name, FRAUD_SCORING_V2.name],
            help="the authorization checkpoint's features (v1: before the standard ones)",
        )
        parser.add_argument("--out", type=Path, default=None, help="where the report goes")
        parser.add_argument("--register", action="store_true", help="keep the model as a candidate")

    def handle(self, *args, file: Path, **o):
        try:
            options = self._options(o)
        except BacktestError as exc:
            raise CommandError(str(exc)) from exc
        out = o["out"] or Path(settings.VAR_DIR) / "backtests" / (
            f"{file.stem}-{datetime.now(UTC):%Y%m%dT%H%M%S}"
        )
        began = time.monotonic()

        def progress(step: str) -> None:
            self.stdout.write(f"[{time.monotonic() - began:6.0f} s] {step}")

        work = Path(tempfile.mkdtemp(prefix="backtest-", dir=_scratch()))
        try:
            report = run_backtest(file, options, work=work, progress=progress)
        except BacktestError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            shutil.rmtree(work, ignore_errors=True)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps(report.as_dict(), indent=2) + "\n")
        (out / "report.html").write_text(report_html(report))
        for c in report.checkpoints:
            self.stdout.write(
                f"{c.checkpoint}: AUC {_f(c.auc)}, average precision {_f(c.ap)}, "
                f"Card Precision@{options.k} {_f(c.cp_at_k)} on {c.test_rows:,} payments "
                f"({c.test_frauds:,} fraud); at the threshold {c.flagged_per_day:,.1f} flagged "
                f"a day, precision {_f(c.precision)}, recall {_f(c.recall)}"
            )
        if o["register"]:
            self._register(report, options)
        self.stdout.write(f"report: {out / 'report.html'} and report.json")

    def _options(self, o: dict) -> Options:
        if o["precision"] is not None and not 0 < o["precision"] <= 1:
            raise BacktestError("--precision must be in (0, 1]")
        if o["budget"] < 1 or o["k"] < 1:
            raise BacktestError("--budget and --k must be >= 1")
        if o["label_delay_days"] < 0 or o["snapshot_hours"] <= 0:
            raise BacktestError("--label-delay-days must be >= 0, --snapshot-hours > 0")
        return Options(
            split=Split(
                train_start=day_start(o["train_start"]),
                train_days=o["train_days"],
                gap_days=o["gap_days"],
                test_days=o["test_days"],
            ),
            label_delay=timedelta(days=o["label_delay_days"]),
            drop_known_cards=o["drop_known_cards"],
            budget=o["budget"],
            target_precision=o["precision"],
            k=o["k"],
            snapshot_every=timedelta(hours=o["snapshot_hours"]),
            service=o["service"],
        )

    def _register(self, report, options: Options) -> None:
        from ml.models import TrainingRun
        from ml.services.registry import model_register

        checkpoint = next(c for c in report.checkpoints if c.checkpoint == AUTHORIZATION)
        split = options.split
        model = model_register(
            booster=checkpoint.booster,
            feature_service=checkpoint.service,
            params=checkpoint.choice,
            metrics={
                "backtest": {
                    "file": report.file,
                    "auc": checkpoint.auc,
                    "ap": checkpoint.ap,
                    "cp_at_k": checkpoint.cp_at_k,
                    "k": options.k,
                    "test_rows": checkpoint.test_rows,
                }
            },
            data_start=split.train_start,
            data_end=split.train_end,
            training_rows=checkpoint.train_rows,
            source=f"backtest of {Path(report.file).name}",
            kind=TrainingRun.Kind.FULL,
        )
        self.stdout.write(f"registered {model.version} ({model.status}), not deployed")


def _f(value: float | None) -> str:
    return "not known" if value is None else f"{value:.3f}"


def _scratch() -> Path:
    path = Path(settings.VAR_DIR) / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return path
