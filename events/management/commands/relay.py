from django.conf import settings
from django.core.management.base import BaseCommand

from events.bus import bus_from_settings
from events.relay import relay_run
from events.stopping import stop_on_signals
from events.telemetry import serve_from_settings


class Command(BaseCommand):
    help = "Publish the transactional outbox to the event stream, in order, until stopped."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args, batch_size: int, **options):
        bus = bus_from_settings()
        serve_from_settings()
        self.stdout.write(f"relay: outbox -> {bus.name} bus (Ctrl-C stops)")
        with stop_on_signals() as stop:
            total = relay_run(
                bus, stop=stop, partitions=settings.EVENT_TOPIC_PARTITIONS, batch_size=batch_size
            )
        self.stdout.write(f"relay: stopped after publishing {total} events")
