from django.core.management.base import BaseCommand, CommandError

from events.bus import bus_from_settings
from events.management.stopping import stop_on_signals
from events.registry import CONSUMERS, consumer_spec
from events.runner import ConsumerRunner


class Command(BaseCommand):
    help = "Run one registered stream consumer by name until stopped."

    def add_arguments(self, parser):
        parser.add_argument("name", help=f"one of: {', '.join(sorted(CONSUMERS))}")
        parser.add_argument("--idle-exit", type=float, default=None, help="exit after N idle s")

    def handle(self, *args, name: str, idle_exit: float | None, **options):
        try:
            spec = consumer_spec(name)
        except KeyError as exc:
            raise CommandError(str(exc.args[0])) from exc
        bus = bus_from_settings()
        runner = ConsumerRunner(spec, bus)
        self.stdout.write(f"{name}: consuming {len(spec.topics)} topics from the {bus.name} bus")
        stats = runner.run(stop=stop_on_signals(), idle_timeout_s=idle_exit)
        self.stdout.write(
            f"{name}: stopped; applied {stats.applied}, duplicates {stats.duplicates}, "
            f"dead-lettered {stats.dead_lettered}"
        )
