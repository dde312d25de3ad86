"""``python manage.py simulate <mode>``: load, end-to-end, history, replay (README: Simulator)."""

from __future__ import annotations

import csv
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from events.bus import bus_from_settings
from events.payments_file import file_salt, read_rows
from events.stopping import stop_on_signals
from simulator import selectors, services
from simulator.city import city_from_file, city_from_url
from simulator.config import (
    DEFAULT_START,
    SCENARIOS,
    LabelConfig,
    SimConfig,
    parse_drift,
    parse_scenario_rate,
    parse_time,
)
from simulator.endtoend import DEMO_DRIVERS, EndToEnd, Http, loopback_address
from simulator.engine import Simulation
from simulator.history import history_write
from simulator.live import Analyst, live_publish
from simulator.load import load_publish, topics_ensure
from simulator.replay import RowEvents, replay_publish
from simulator.report import Display, Stats, print_summary


def _world_options(parser) -> None:
    parser.add_argument("--seed", type=int, default=1, help="same seed, same events")
    parser.add_argument("--start", type=parse_time, default=None, help="simulated start time")
    parser.add_argument("--riders", type=int, default=2000)
    parser.add_argument("--drivers", type=int, default=200)
    parser.add_argument("--trips-per-week", type=float, default=3.0, help="per rider, median")
    parser.add_argument("--new-riders-per-day", type=float, default=20.0)
    _scenario_options(parser)
    parser.add_argument(
        "--drift",
        action="append",
        default=[],
        metavar="NAME@TIME",
        help="black_friday, fraud_ring, or a scenario switched on, at a simulated time or "
        "+DURATION after the start (+10m; in live mode, of the app's time)",
    )


def _scenario_options(parser) -> None:
    parser.add_argument(
        "--scenario",
        action="append",
        type=parse_scenario_rate,
        default=[],
        metavar="NAME=RATE",
        help=f"incidents per simulated day (0: off); scenarios: {', '.join(SCENARIOS)}",
    )
    parser.add_argument("--no-fraud", action="store_true", help="switch every scenario off")


def _label_options(
    parser, *, fraction: float, false_rate: float, delay_minutes: float | None = None
) -> None:
    """The chargeback options; a live run (``delay_minutes``) takes the median delay in the
    app's minutes, the others in simulated days."""
    parser.add_argument("--label-fraction", type=float, default=fraction)
    if delay_minutes is None:
        parser.add_argument("--label-delay-median-days", type=float, default=10.0)
    else:
        parser.add_argument(
            "--label-delay-minutes",
            type=float,
            default=delay_minutes,
            help="median chargeback delay, in the app's minutes",
        )
    parser.add_argument("--label-delay-sigma", type=float, default=0.6)
    parser.add_argument("--false-chargeback-rate", type=float, default=false_rate)


def _run_options(parser) -> None:
    parser.add_argument(
        "--max-error-rate",
        type=float,
        default=0.01,
        help="exit non-zero when errors / attempts exceed this",
    )


class Command(BaseCommand):
    help = "Simulate riders, drivers and fraud: load, end-to-end, history or replay."

    def add_arguments(self, parser):
        modes = parser.add_subparsers(dest="mode", required=True, metavar="MODE")

        load = modes.add_parser("load", help="publish events to the stream at a fixed rate")
        _world_options(load)
        _label_options(load, fraction=0.8, false_rate=0.002)
        load.add_argument("--rate", type=float, default=100.0, help="events per second")
        load.add_argument("--duration", type=float, default=None, help="seconds")
        load.add_argument("--count", type=int, default=None, help="events")
        load.add_argument("--topic-prefix", default="", help="publish to <prefix>.<topic>")
        _run_options(load)

        e2e = modes.add_parser("end-to-end", help="drive the booking API as riders and drivers")
        e2e.add_argument("--base-url", default="http://127.0.0.1:8000", help="loopback only")
        e2e.add_argument("--seed", type=int, default=1)
        _scenario_options(e2e)
        e2e.add_argument("--riders", type=int, default=5, help="riders to sign up")
        e2e.add_argument("--riders-from", type=Path, help="CSV of username,password")
        e2e.add_argument(
            "--driver",
            action="append",
            default=[],
            metavar="USER:PASSWORD",
            help="a driver account (repeatable; default the demo drivers)",
        )
        e2e.add_argument("--actions", type=int, default=None, help="trips or incidents")
        e2e.add_argument("--duration", type=float, default=None, help="seconds")
        e2e.add_argument("--rate", type=float, default=2.0, help="actions per second")
        e2e.add_argument("--fraud-share", type=float, default=0.1)
        e2e.add_argument("--username-prefix", default=None)
        _run_options(e2e)

        history = modes.add_parser("history", help="write simulated days to Parquet files")
        _world_options(history)
        _label_options(history, fraction=0.8, false_rate=0.002)
        history.add_argument("--days", type=float, required=True)
        history.add_argument("--out", type=Path, default=None)
        _run_options(history)

        live = modes.add_parser(
            "live", help="play the city against the running app, sped up, with an analyst"
        )
        _world_options(live)
        live.add_argument(
            "--speedup", type=float, default=60.0, help="simulated seconds a second (1: real pace)"
        )
        live.add_argument("--duration", type=float, required=True, help="seconds")
        _label_options(live, fraction=0.8, false_rate=0.002, delay_minutes=3.0)
        live.add_argument("--base-url", default="http://127.0.0.1:8000", help="loopback only")
        live.add_argument(
            "--analyst",
            default="analyst:analyst",
            metavar="USER:PASSWORD",
            help="who decides the simulator's reviews through the fraud desk API",
        )
        live.add_argument("--no-analyst", action="store_true", help="leave every review to people")
        live.add_argument("--analyst-accuracy", type=float, default=0.95)
        live.add_argument(
            "--review-seconds",
            default="30:120",
            metavar="MIN:MAX",
            help="the analyst's think time per review",
        )
        live.add_argument("--topic-prefix", default="", help="publish to <prefix>.<topic>")
        live.add_argument(
            "--wait-for-app",
            type=float,
            default=0.0,
            metavar="SECONDS",
            help="wait this long for the app to answer (started beside it)",
        )
        _run_options(live)

        replay = modes.add_parser("replay", help="stream an external CSV or Parquet file")
        replay.add_argument("file", type=Path)
        replay.add_argument("--seed", type=int, default=1, help="seeds the label delays")
        replay.add_argument("--speedup", type=float, default=1.0, help="0: as fast as possible")
        replay.add_argument("--topic-prefix", default="")
        _label_options(replay, fraction=1.0, false_rate=0.0)
        _run_options(replay)

    def handle(self, *args, mode: str, **options):
        tty = self.stdout.isatty()
        options["mode"] = mode
        try:
            with stop_on_signals() as stop:
                stats = getattr(self, "_" + mode.replace("-", "_"))(options, stop, tty)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        print_summary(stats, stream=self.stdout, tty=tty)
        if stats.error_rate > options["max_error_rate"]:
            raise CommandError(
                f"error rate {stats.error_rate:.2%} is over --max-error-rate "
                f"{options['max_error_rate']:.2%} ({stats.errors} errors)"
            )

    def _config(self, options: dict) -> SimConfig:
        rates = dict(SCENARIOS)
        if options["no_fraud"]:
            rates = dict.fromkeys(SCENARIOS, 0.0)
        rates.update(dict(options["scenario"]))
        values = {"seed": options["seed"], "scenarios": rates}
        # A live run's event time is its simulated time slowed down ``speedup`` times.
        scale = options.get("speedup", 1.0) if options.get("mode") == "live" else 1.0
        if "riders" in options and "drift" in options:
            start = options["start"] or DEFAULT_START
            values.update(
                riders=options["riders"],
                drivers=options["drivers"],
                trips_per_rider_per_week=options["trips_per_week"],
                new_riders_per_day=options["new_riders_per_day"],
                drifts=tuple(parse_drift(d, start=start, scale=scale) for d in options["drift"]),
                start=start,
            )
        if "label_fraction" in options:
            median_days = options.get("label_delay_median_days")
            if median_days is None:  # live: minutes of the app's time
                median_days = options["label_delay_minutes"] * scale / (24 * 60)
            values["labels"] = LabelConfig(
                fraction=options["label_fraction"],
                delay_median_days=median_days,
                delay_sigma=options["label_delay_sigma"],
                false_rate=options["false_chargeback_rate"],
            )
        return SimConfig(**values)

    def _load(self, options: dict, stop, tty: bool) -> Stats:
        if options["count"] is None and options["duration"] is None:
            raise CommandError("load needs --count or --duration (a run is bounded)")
        config = self._config(options)
        simulation = Simulation(config, city_from_file())
        stats = Stats(mode="load", requested_rate=options["rate"])
        params = {
            "rate": options["rate"],
            "count": options["count"],
            "duration_s": options["duration"],
            "topic_prefix": options["topic_prefix"],
            "config": config.to_json(),
        }
        total = options["count"] or int(options["rate"] * options["duration"])
        display = Display(stats, stream=self.stdout, tty=tty, total=total, unit="events")
        bus = bus_from_settings()
        topics_ensure(
            bus, prefix=options["topic_prefix"], partitions=settings.EVENT_TOPIC_PARTITIONS
        )
        with services.simulation_record(mode="load", params=params, stats=stats) as hooks:
            with display:
                load_publish(
                    simulation.events(),
                    bus=bus,
                    rate=options["rate"],
                    count=options["count"],
                    duration_s=options["duration"],
                    topic_prefix=options["topic_prefix"],
                    stats=stats,
                    on_truth=hooks.on_truth,
                    should_stop=lambda: stop.is_set() or hooks.should_stop(),
                    on_progress=lambda: (hooks.on_progress(), display.update(stats.published)),
                )
                display.update(stats.published, force=True)
            stats.pending_labels = simulation.labels_scheduled - simulation.labels_emitted
        return stats

    def _live(self, options: dict, stop, tty: bool) -> Stats:
        base_url = options["base_url"]
        loopback_address(base_url)
        wall_start = datetime.now(UTC).replace(microsecond=0)
        if options["start"] is None:  # the city at 07:00 today, waking up
            options["start"] = wall_start.replace(hour=7, minute=0, second=0)
        config = self._config(options)
        think = options["review_seconds"].split(":")
        try:
            think_s = (float(think[0]), float(think[-1]))
        except ValueError as exc:
            raise CommandError("--review-seconds takes MIN:MAX seconds, e.g. 30:120") from exc
        simulation = Simulation(config, self._city_when_up(base_url, options["wait_for_app"]))
        stats = Stats(mode="live")
        params = {
            "speedup": options["speedup"],
            "started_at": wall_start.isoformat(),
            "duration_s": options["duration"],
            "topic_prefix": options["topic_prefix"],
            "analyst": None if options["no_analyst"] else options["analyst"].split(":")[0],
            "config": config.to_json(),
        }
        display = Display(
            stats, stream=self.stdout, tty=tty, total=options["duration"], unit="seconds"
        )
        bus = bus_from_settings()
        topics_ensure(
            bus, prefix=options["topic_prefix"], partitions=settings.EVENT_TOPIC_PARTITIONS
        )
        with services.simulation_record(mode="live", params=params, stats=stats) as hooks:
            analyst = None
            if not options["no_analyst"]:
                username, _, password = options["analyst"].partition(":")
                analyst = Analyst(
                    http=Http(base_url),
                    username=username,
                    password=password,
                    truth_of=lambda ids: selectors.payments_truth(payment_ids=ids),
                    stats=stats,
                    seed=config.seed,
                    accuracy=options["analyst_accuracy"],
                    think_s=think_s,
                )
            began = time.monotonic()
            with display:
                live_publish(
                    simulation.events(),
                    bus=bus,
                    start=config.start,
                    wall_start=wall_start,
                    speedup=options["speedup"],
                    duration_s=options["duration"],
                    topic_prefix=options["topic_prefix"],
                    stats=stats,
                    on_truth=hooks.on_truth,
                    should_stop=lambda: stop.is_set() or hooks.should_stop(),
                    on_tick=(lambda _: analyst.tick(time.monotonic())) if analyst else None,
                    on_progress=lambda: (
                        hooks.on_progress(),
                        display.update(time.monotonic() - began),
                    ),
                )
                display.update(min(time.monotonic() - began, options["duration"]), force=True)
            stats.pending_labels = simulation.labels_scheduled - simulation.labels_emitted
        return stats

    def _city_when_up(self, base_url: str, wait_s: float):
        """Read the app's city, retrying while it starts (``wait_s`` at most)."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                return city_from_url(base_url)
            except OSError as exc:
                if time.monotonic() >= deadline:
                    raise CommandError(f"the app at {base_url} does not answer: {exc}") from exc
                time.sleep(1.0)

    def _history(self, options: dict, stop, tty: bool) -> Stats:
        config = self._config(options)
        out = options["out"] or Path(settings.VAR_DIR) / "simulator" / f"history-{config.seed}"
        until = config.start + timedelta(days=options["days"])
        simulation = Simulation(config, city_from_file())
        stats = Stats(mode="history")
        hours = options["days"] * 24
        display = Display(stats, stream=self.stdout, tty=tty, total=hours, unit="simulated hours")

        def progress(at) -> None:
            display.update((at - config.start).total_seconds() / 3600)

        def events():
            for item in simulation.events(until=until):
                if stop.is_set():
                    stats.stopped = True
                    return
                yield item

        with display:
            summary = history_write(events(), out=out, stats=stats, on_progress=progress)
            display.update(hours, force=True)
        stats.pending_labels = simulation.labels_scheduled - simulation.labels_emitted
        self.stdout.write(
            f"history: {summary['files']['ground_truth.parquet']} ground-truth "
            f"rows; files under {out}"
        )
        return stats

    def _replay(self, options: dict, stop, tty: bool) -> Stats:
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        config = self._config({**options, "scenario": [], "no_fraud": True})
        stats = Stats(mode="replay")
        params = {"file": str(path), "speedup": options["speedup"], "config": config.to_json()}
        row_events = RowEvents(salt=file_salt(path), labels=config.labels, seed=config.seed)
        display = Display(stats, stream=self.stdout, tty=tty, total=None, unit="rows")
        bus = bus_from_settings()
        topics_ensure(
            bus, prefix=options["topic_prefix"], partitions=settings.EVENT_TOPIC_PARTITIONS
        )
        record = services.simulation_record(mode="replay", params=params, stats=stats)
        with record as hooks, display:
            replay_publish(
                read_rows(path),
                city=city_from_file(),
                bus=bus,
                stats=stats,
                row_events=row_events,
                speedup=options["speedup"],
                topic_prefix=options["topic_prefix"],
                on_truth=hooks.on_truth,
                should_stop=lambda: stop.is_set() or hooks.should_stop(),
                on_progress=lambda n: (hooks.on_progress(), display.update(n)),
            )
        return stats

    def _end_to_end(self, options: dict, stop, tty: bool) -> Stats:
        base_url = options["base_url"]
        loopback_address(base_url)
        if options["actions"] is None and options["duration"] is None:
            raise CommandError("end-to-end needs --actions or --duration (a run is bounded)")
        drivers = [tuple(d.split(":", 1)) for d in options["driver"]] or list(DEMO_DRIVERS)
        if any(len(d) != 2 for d in drivers):
            raise CommandError("--driver takes USER:PASSWORD")
        existing = []
        if options["riders_from"]:
            with options["riders_from"].open(newline="") as f:
                existing = [(row[0], row[1]) for row in csv.reader(f) if len(row) >= 2]
        config = self._config(options)
        stats = Stats(mode="end-to-end", requested_rate=options["rate"])
        prefix = options["username_prefix"] or f"sim{config.seed}-{int(time.time()):x}"
        params = {
            "base_url": base_url,
            "seed": config.seed,
            "prefix": prefix,
            "actions": options["actions"],
            "duration_s": options["duration"],
        }
        display = Display(
            stats, stream=self.stdout, tty=tty, total=options["actions"], unit="actions"
        )
        with services.simulation_record(mode="end-to-end", params=params, stats=stats) as hooks:
            player = EndToEnd(
                base_url=base_url,
                config=config,
                city=city_from_url(base_url),
                stats=stats,
                username_prefix=prefix,
                drivers=drivers,
                on_truth=hooks.on_truth,
                fraud_share=options["fraud_share"],
            )
            player.setup(riders=0 if existing else options["riders"], existing=existing)
            with display:
                player.run(
                    actions=options["actions"],
                    duration_s=options["duration"],
                    rate=options["rate"],
                    should_stop=lambda: stop.is_set() or hooks.should_stop(),
                    on_progress=lambda n: (hooks.on_progress(), display.update(n)),
                )
        return stats
