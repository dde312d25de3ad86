"""``python manage.py train``: train the scoring model now (a full retrain or a fine-tune of the
champion), as a trigger would, and say what came of it: the version registered and each
offline gate's verdict. ``--queue`` hands it to the Celery worker instead (queue ``training``)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from fraud.models import CHECKPOINTS
from ml.models import TrainingRun
from ml.services import training_request, training_run


class Command(BaseCommand):
    help = "Train a candidate model from the served-feature logs and their labels, and gate it."

    def add_arguments(self, parser):
        parser.add_argument("--kind", choices=["full", "fine_tune"], default="full")
        parser.add_argument(
            "--queue", action="store_true", help="queue it for the Celery worker; do not wait"
        )
        parser.add_argument("--key", default=None, help="idempotency key (default: a new one)")
        parser.add_argument(
            "--checkpoint",
            choices=CHECKPOINTS,
            default="authorization",
            help="whose model: the authorization's, or the capture's (from its own log)",
        )

    def handle(self, *args, kind: str, queue: bool, key: str | None, checkpoint: str, **options):
        run, created = training_request(
            kind=kind, request_key=key, queue=queue, checkpoint=checkpoint
        )
        if not created and run.status in (TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING):
            raise CommandError(
                f"a training is {run.status} already ({run.request_key}, {run.stage}, "
                f"{run.percent} %): one at a time"
            )
        if queue:
            self.stdout.write(f"queued {run.kind} training {run.request_key}")
            return
        try:
            run = training_run(request_key=run.request_key)
        except Exception as exc:
            raise CommandError(f"training {run.request_key} failed: {exc}") from exc
        model = run.model
        self.stdout.write(
            f"{run.kind} training {run.request_key}: {model.version} registered, {model.status} "
            f"({run.dataset['rows']} rows, {run.dataset['positives']} fraud; "
            f"{run.cpu_seconds:.1f} s CPU)"
        )
        if run.note:
            self.stdout.write(f"  {run.note}")
        for gate in model.gates:
            verdict = "passed" if gate["passed"] else "FAILED"
            self.stdout.write(
                f"  {gate['gate']}: {verdict}{': ' + gate['reason'] if gate['reason'] else ''}"
            )
