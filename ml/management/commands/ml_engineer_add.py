"""``python manage.py ml_engineer_add NAME --password P``: create an ML engineer (or reset their
password)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from ml.services.people import ml_engineer_ensure


class Command(BaseCommand):
    help = "Create the ML engineer NAME (the ml_engineer group: the model console, not staff)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--password", required=True)

    def handle(self, *args, username: str, password: str, **options):
        user = ml_engineer_ensure(username=username, password=password)
        self.stdout.write(f"ML engineer: {user.get_username()} / {password} (models: /ml/)")
