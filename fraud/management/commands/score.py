"""``python manage.py score``: run the fraud scorer until stopped."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from events.batching import gc_settle
from events.bus import bus_from_settings
from events.management.stopping import stop_on_signals
from features.definitions import VIEWS
from features.repo import apply_repo
from features.store import FeatureConfig, feature_store
from fraud.scorer import DEFAULT_GROUP, Scorer, ScorerSettings


class Command(BaseCommand):
    help = "Score authorized payments: features, model, decision, fraud.scored events."

    def add_arguments(self, parser):
        parser.add_argument("--group", default=DEFAULT_GROUP, help="consumer group")
        parser.add_argument("--max-records", type=int, default=None, help="records per batch")
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
        if not {view.name for view in VIEWS} <= declared:
            # A fresh deployment: the views must be in the registry before they are read.
            apply_repo(config)
        overrides = {"poll_timeout_s": poll_ms / 1000}
        if max_records is not None:
            overrides["max_records"] = max_records
        bus = bus_from_settings()
        scorer = Scorer(
            bus=bus,
            config=config,
            settings=ScorerSettings.from_settings(**overrides),
            group=group,
            namespace=topic_namespace,
        )
        self.stdout.write(
            f"fraud-scorer: consuming {scorer.topic} from the {bus.name} bus (group {group}), "
            f"features from the {config.online} online store"
        )
        self.stdout.flush()
        scorer.reader.warm()
        scorer.watcher.current()
        # Everything loaded so far (Django, Feast, LightGBM, the registry, the models) lives as
        # long as the process: out of the collector's sight (``events.batching.gc_settle``).
        gc_settle()
        stats = scorer.run(
            stop=stop_on_signals(), until_idle_s=until_idle, max_seconds=options["max_seconds"]
        )
        self.stdout.write(
            f"fraud-scorer: stopped; {stats.events} events, {stats.scored} scored, "
            f"{stats.duplicates} duplicates, {stats.degraded} degraded, {stats.poison} poison, "
            f"batch p50 {stats.latency(0.5):.1f} ms p99 {stats.latency(0.99):.1f} ms "
            f"(stages p50/p99 ms: {stats.stages_line()})"
        )
