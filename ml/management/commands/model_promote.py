"""``python manage.py model_promote VERSION [--role champion]``: deploy a registered model."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from fraud.artifacts import ModelRefused
from fraud.models import Deployment
from fraud.services import DeploymentInvalid
from ml.models import ModelVersion
from ml.services import ModelRejected, model_promote
from ml.train import DEFAULT_THRESHOLDS


class Command(BaseCommand):
    help = "Deploy a registered model version as champion, shadow or canary (or retire it)."

    def add_arguments(self, parser):
        parser.add_argument("version")
        parser.add_argument("--role", choices=Deployment.Role.values, default="champion")
        parser.add_argument("--review-threshold", type=float, default=DEFAULT_THRESHOLDS["review"])
        parser.add_argument(
            "--decline-threshold", type=float, default=DEFAULT_THRESHOLDS["decline"]
        )
        parser.add_argument("--canary-share", type=float, default=0.0)

    def handle(self, *args, **options):
        try:
            deployment = model_promote(
                version=options["version"],
                role=options["role"],
                review_threshold=options["review_threshold"],
                decline_threshold=options["decline_threshold"],
                canary_share=options["canary_share"],
            )
        except ModelVersion.DoesNotExist:
            raise CommandError(f"no model version {options['version']!r}") from None
        except (ModelRefused, DeploymentInvalid, ModelRejected) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"deployed {deployment}")
