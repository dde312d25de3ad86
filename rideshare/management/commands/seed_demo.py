from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from rideshare.services import staff_user_ensure


class Command(BaseCommand):
    help = "Load the demo data (DEBUG only): a staff account for the admin and analyst pages."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--password", default="admin")

    def handle(self, *args, username: str, password: str, **options):
        if not settings.DEBUG:
            raise CommandError(
                "seed_demo creates a known password; it runs only with DJANGO_DEBUG=true."
            )
        staff_user_ensure(username=username, password=password)
        self.stdout.write(f"demo staff account: {username} / {password}")
