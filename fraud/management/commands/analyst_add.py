"""``python manage.py analyst_add NAME``: create a fraud analyst (or reset their password)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from fraud.services.reviews import analyst_ensure


class Command(BaseCommand):
    help = "Create the fraud analyst NAME (the analyst group: review queue, no staff rights)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--password", required=True)

    def handle(self, *args, username: str, password: str, **options):
        user = analyst_ensure(username=username, password=password)
        self.stdout.write(
            f"analyst: {user.get_username()} / {password} (review queue: /fraud/reviews/)"
        )
