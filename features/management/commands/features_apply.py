"""``python manage.py features_apply``: create the offline directories, apply the Feast repo."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from features.repo import apply_repo
from features.store import FeatureConfig


class Command(BaseCommand):
    help = "Apply the feature repo (entities, sources, views, services) to the Feast registry."

    def handle(self, *args, **options):
        config = FeatureConfig.from_settings()
        apply_repo(config)
        self.stdout.write(f"applied feature repo {config.project!r} to {config.registry_url}")
