"""``python manage.py features_backfill --history DIR``: compute every view over an event history
with the DuckDB engine and append the rows to the offline store (``features.offline.backfill``)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from features.definitions import VIEWS, VIEWS_BY_NAME
from features.offline import backfill
from features.repo import offline_dirs_create
from features.store import FeatureConfig

_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str) -> timedelta:
    """Parse ``1d``, ``6h``, ``30m`` or ``45s``."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([dhms])", text.strip())
    if not match:
        raise ValueError(f"not a duration: {text!r} (examples: 1d, 6h, 30m)")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def _aware(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return moment


class Command(BaseCommand):
    help = "Backfill the offline feature store from an event history (simulator or archive)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--history",
            type=Path,
            required=True,
            help="simulator output (events/<topic>.parquet) or archive (<topic>/*.parquet)",
        )
        parser.add_argument("--snapshot-every", type=parse_duration, default=timedelta(days=1))
        parser.add_argument("--start", type=_aware, default=None, help="ISO time with a zone")
        parser.add_argument("--end", type=_aware, default=None, help="ISO time with a zone")
        parser.add_argument(
            "--view", action="append", default=[], choices=sorted(VIEWS_BY_NAME), help="repeatable"
        )

    def handle(self, *args, history: Path, **options):
        if not history.is_dir():
            raise CommandError(f"{history}: no such directory")
        config = FeatureConfig.from_settings()
        offline_dirs_create(config)
        views = [VIEWS_BY_NAME[name] for name in options["view"]] or list(VIEWS)
        result = backfill(
            config,
            history=history,
            views=views,
            start=options["start"],
            end=options["end"],
            snapshot_every=options["snapshot_every"],
        )
        for view in views:
            self.stdout.write(f"{view.name:<20} {result.rows[view.name]:>9} rows")
        self.stdout.write(
            f"backfill: {result.events} events, {sum(result.rows.values())} rows, "
            f"{len(result.snapshots)} snapshots, {len(result.files)} files "
            f"in {result.seconds:.2f} s under {config.offline_dir / 'views'}"
        )
