"""``python manage.py stream_features``: run the stream processor until stopped."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from events.batching import gc_settle
from events.bus import bus_from_settings
from events.management.stopping import stop_on_signals
from features.definitions import STREAM_VIEWS
from features.processor import DEFAULT_GROUP, StreamProcessor, state_from_config
from features.repo import apply_repo
from features.store import FeatureConfig, feature_store


class Command(BaseCommand):
    help = "Compute the stream feature views from the event stream into the feature stores."

    def add_arguments(self, parser):
        parser.add_argument("--group", default=DEFAULT_GROUP, help="consumer group")
        parser.add_argument("--max-records", type=int, default=1000, help="records per batch")
        parser.add_argument("--poll-ms", type=float, default=50.0, help="poll wait when idle")
        parser.add_argument(
            "--topic-namespace", default="", help="read <namespace>.<topic> (tests, benchmarks)"
        )
        parser.add_argument(
            "--until-idle", type=float, default=None, metavar="SECONDS",
            help="exit after SECONDS with nothing to read",
        )  # fmt: skip
        parser.add_argument("--max-seconds", type=float, default=None, help="exit after N s")

    def handle(self, *args, group, max_records, poll_ms, topic_namespace, until_idle, **options):
        config = FeatureConfig.from_settings()
        declared = {fv.name for fv in feature_store(config).list_feature_views()}
        if not {view.name for view in STREAM_VIEWS} <= declared:
            # A fresh deployment: the views must be in the registry before rows are written.
            apply_repo(config)
        bus = bus_from_settings()
        processor = StreamProcessor(
            bus=bus,
            config=config,
            state=state_from_config(config),
            group=group,
            namespace=topic_namespace,
            max_records=max_records,
            poll_timeout_s=poll_ms / 1000,
            dead_letter_partitions=settings.EVENT_TOPIC_PARTITIONS,
            batch_wait_ms=settings.FEATURES_BATCH_WAIT_MS,
            offline_flush_s=settings.FEATURES_OFFLINE_FLUSH_SECONDS,
        )
        self.stdout.write(
            f"stream-features: consuming {len(processor.topics)} topics from the {bus.name} bus "
            f"(group {group}), {config.online} state and online store"
        )
        self.stdout.flush()
        gc_settle()
        stats = processor.run(
            stop=stop_on_signals(), until_idle_s=until_idle, max_seconds=options["max_seconds"]
        )
        processor.state.close()
        self.stdout.write(
            f"stream-features: stopped; {stats.events} events, {stats.accepted} accepted, "
            f"{stats.late} late, {stats.poison} poison, {stats.outputs} rows out, "
            f"{stats.unexact} not computable, {stats.online_rewrites} online rewrites, "
            f"batch p50 {stats.latency(0.5):.1f} ms p99 {stats.latency(0.99):.1f} ms"
        )
