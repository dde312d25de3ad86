"""``python manage.py consume <name>``: run one registered stream consumer until stopped."""

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from events.batching import gc_settle
from events.bus import bus_from_settings
from events.registry import CONSUMERS, consumer_spec
from events.runner import consumer_step
from events.stopping import stop_on_signals
from events.streaming import ConsumerOptions, consume
from events.telemetry import serve_from_settings


def consumer_arguments(parser) -> None:
    """Add the options every consumer takes (``consume`` and its aliases)."""
    parser.add_argument("--group", default=None, help="consumer group (default: its name)")
    parser.add_argument("--max-records", type=int, default=None, help="records per batch")
    parser.add_argument("--poll-ms", type=float, default=None, help="poll wait when idle")
    parser.add_argument(
        "--topic-namespace", default="", help="read <namespace>.<topic> (tests, benchmarks)"
    )
    parser.add_argument(
        "--until-idle", "--idle-exit", dest="until_idle", type=float, default=None,
        metavar="SECONDS", help="exit after SECONDS with nothing to read",
    )  # fmt: skip
    parser.add_argument("--max-seconds", type=float, default=None, help="exit after N s")


class Command(BaseCommand):
    help = "Run one registered stream consumer by name until stopped."

    def add_arguments(self, parser):
        parser.add_argument("name", help=f"one of: {', '.join(sorted(CONSUMERS))}")
        consumer_arguments(parser)

    def handle(self, *args, name: str, **options):
        try:
            spec = consumer_spec(name)
        except KeyError as exc:
            raise CommandError(str(exc.args[0])) from exc
        bus = bus_from_settings()
        poll_ms = options["poll_ms"]
        step = consumer_step(
            spec,
            bus,
            ConsumerOptions(
                group=options["group"],
                namespace=options["topic_namespace"],
                max_records=options["max_records"],
                poll_timeout_s=None if poll_ms is None else poll_ms / 1000,
            ),
        )
        serve_from_settings()
        self.stdout.write(f"{name}: {step.describe()}")
        self.stdout.flush()
        # Everything loaded so far (Django, Feast, LightGBM, the models) lives as long as the
        # process: out of the collector's sight (``events.batching.gc_settle``).
        gc_settle()
        with stop_on_signals() as stop:
            consume(
                step,
                bus,
                stop=stop,
                until_idle_s=options["until_idle"],
                max_seconds=options["max_seconds"],
            )
        self.stdout.write(f"{name}: stopped; {step.summary()}")


class ConsumerAlias(BaseCommand):
    """An old command name kept for one registered consumer (``consumer_name``): the same
    options, run by ``consume``."""

    consumer_name: str

    def add_arguments(self, parser):
        consumer_arguments(parser)

    def handle(self, *args, **options):
        names = ("group", "max_records", "poll_ms", "topic_namespace", "until_idle", "max_seconds")
        passed = {name: options[name] for name in names}
        call_command("consume", self.consumer_name, **passed, stdout=self.stdout)
