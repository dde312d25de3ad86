"""``python manage.py features_backfill --history DIR``: compute every view over an event history
with the DuckDB engine and append the rows to the offline store (``features.offline.backfill``).

``--catch-up [--history DIR]``: write only the batch snapshots missing at the beat's past
instants (``features.offline.snapshots_catch_up``), over the processor's archive by default."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from features.definitions import VIEWS, VIEWS_BY_NAME
from features.management.arguments import duration_parse, instant_parse
from features.offline import backfill, snapshots_catch_up
from features.repo import offline_dirs_create
from features.store import FeatureConfig


class Command(BaseCommand):
    help = "Backfill the offline feature store from an event history (simulator or archive)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--catch-up",
            action="store_true",
            help="only the batch snapshots missing at past instants of the beat's cadence "
            "(--snapshot-every, default FEATURES_MATERIALIZE_EVERY_SECONDS); the history "
            "defaults to the stream processor's archive",
        )
        parser.add_argument(
            "--history",
            type=Path,
            default=None,
            help="simulator output (events/<topic>.parquet) or archive (<topic>/*.parquet)",
        )
        parser.add_argument("--snapshot-every", type=duration_parse, default=None)
        parser.add_argument(
            "--start", type=instant_parse, default=None, help="ISO time, UTC if no zone"
        )
        parser.add_argument(
            "--end", type=instant_parse, default=None, help="ISO time, UTC if no zone"
        )
        parser.add_argument(
            "--view", action="append", default=[], choices=sorted(VIEWS_BY_NAME), help="repeatable"
        )

    def handle(self, *args, history: Path | None, catch_up: bool, **options):
        config = FeatureConfig.from_settings()
        if history is None and not catch_up:
            raise CommandError("--history is required (or --catch-up, over the archive)")
        if history is not None and not history.is_dir():
            raise CommandError(f"{history}: no such directory")
        offline_dirs_create(config)
        if catch_up:
            every = options["snapshot_every"] or timedelta(
                seconds=settings.FEATURES_MATERIALIZE_EVERY_SECONDS
            )
            done = snapshots_catch_up(config, every=every, history=history)
            self.stdout.write(
                f"catch-up: {len(done.snapshots)} instants, {sum(done.rows.values())} rows, "
                f"{len(done.files)} files in {done.seconds:.2f} s"
            )
            return
        views = [VIEWS_BY_NAME[name] for name in options["view"]] or list(VIEWS)
        result = backfill(
            config,
            history=history,
            views=views,
            start=options["start"],
            end=options["end"],
            snapshot_every=options["snapshot_every"] or timedelta(days=1),
        )
        for view in views:
            self.stdout.write(f"{view.name:<20} {result.rows[view.name]:>9} rows")
        self.stdout.write(
            f"backfill: {result.events} events, {sum(result.rows.values())} rows, "
            f"{len(result.snapshots)} snapshots, {len(result.files)} files "
            f"in {result.seconds:.2f} s under {config.offline_dir / 'views'}"
        )
