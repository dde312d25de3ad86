"""Training sets: rows/s and peak memory of ``features.training.training_set`` on large spines.

    python -m benchmarks.training_set --rows 100000,1000000

Once, cached under ``--cache`` (default ``var/benchmarks``) and reused: ``manage.py simulate
history --days 28 --riders 4000`` (seed 1); its batch views backfilled by the DuckDB engine
into an offline store of its own (a snapshot every ``--snapshot-hours``, 6 by default: 112
snapshots of every rider, card, driver and zone); its authorised payments with the trip's
driver.

Then, per size in ``--rows``, in a process of its own (so its peak RSS is its own): a spine of
that many payments sampled with replacement (seed 7), each at its own instant shifted later by
a uniform 0 to ``--shift-minutes`` (360): windows slide and most instants are no event's;
``training_set`` over it (every view of ``fraud_scoring_v1``: stream views evaluated at each
instant over the events, batch views as of each instant from the snapshots, then the
on-demand features). Printed: the spine's build time and RSS, ``training_set``'s wall time and
rows/s, and the process's peak RSS (``ru_maxrss``: Python, Arrow and DuckDB together). A
progress line ticks every 5 s with the RSS, and the run ends itself (exit 3) when its RSS passes
``--max-rss-gib`` (8): the machine has no swap.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
PAYMENTS = "payments.parquet"
BACKFILLED = "backfilled.json"
GIB = 1 << 30


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _world(args: argparse.Namespace) -> Path:
    return Path(args.cache) / f"training-d{args.days:g}-r{args.riders}-s{args.seed}"


def _config(world: Path, memory_limit: str):
    from features.store import FeatureConfig

    return FeatureConfig(
        project="bench_training",
        registry_url=f"sqlite:///{world / 'registry.sqlite3'}",
        online="sqlite",
        data_dir=world / "features",
        duckdb_memory_limit=memory_limit,
    )


def prepare(args: argparse.Namespace) -> Path:
    """Return the cached world: the history, its backfilled batch views, its payments; make
    what is missing."""
    world = _world(args)
    history = world / "history"
    if not (history / "summary.json").exists():
        print(f"simulating {args.days:g} days of {args.riders} riders into {history} ...")
        env = {**os.environ, "DJANGO_DEBUG": os.environ.get("DJANGO_DEBUG", "true")}
        subprocess.run(
            [sys.executable, "manage.py", "simulate", "history", "--days", f"{args.days:g}",
             "--riders", str(args.riders), "--seed", str(args.seed), "--out", str(history)],
            cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
    config = _config(world, args.memory_limit)
    marker = world / BACKFILLED
    if not marker.exists() or json.loads(marker.read_text())["hours"] != args.snapshot_hours:
        from features.definitions import BATCH_VIEWS
        from features.offline import backfill
        from features.repo import offline_dirs_create

        print(f"backfilling the batch views every {args.snapshot_hours:g} h ...")
        for view in BATCH_VIEWS:
            for path in config.view_dir(view.name).glob("backfill-*.parquet"):
                path.unlink()
        offline_dirs_create(config)
        result = backfill(
            config,
            history=history,
            views=BATCH_VIEWS,
            snapshot_every=timedelta(hours=args.snapshot_hours),
        )
        marker.write_text(json.dumps({"hours": args.snapshot_hours, "rows": result.rows}))
    if not (world / PAYMENTS).exists():
        _payments_write(history / "events", world / PAYMENTS)
    return world


def _payments_write(events: Path, out: Path) -> None:
    """Write the history's authorised payments as spine columns, with the trip's driver."""
    drivers = {}
    for row in (
        pq.read_table(events / "trips.assigned.v1.parquet", columns=["payload"])
        .column("payload")
        .to_pylist()
    ):
        trip = json.loads(row)
        drivers[trip["trip_id"]] = trip["driver_id"]
    table = pq.read_table(events / "payments.authorized.v1.parquet")
    payloads = [json.loads(p) for p in table.column("payload").to_pylist()]
    pq.write_table(
        pa.table(
            {
                "card_id": [p["card_id"] for p in payloads],
                "rider_id": [p["rider_id"] for p in payloads],
                "zone_id": [p["pickup_zone"] for p in payloads],
                "driver_id": [drivers.get(p["trip_id"]) for p in payloads],
                "occurred_at": table.column("occurred_at").cast(pa.timestamp("us", tz="UTC")),
                "amount_cents": pa.array([p["amount_cents"] for p in payloads], pa.int64()),
                "distance_km": pa.array([p.get("distance_km") for p in payloads], pa.float64()),
            }
        ),
        out,
    )


def spine_build(world: Path, rows: int, shift_minutes: float) -> pd.DataFrame:
    """Return ``rows`` payments of the world sampled with replacement, each at its instant
    shifted later by a uniform 0 to ``shift_minutes`` (µs), keys as Arrow-backed strings."""
    payments = pq.read_table(world / PAYMENTS)
    rng = np.random.default_rng(7)
    sample = payments.take(pa.array(rng.integers(0, payments.num_rows, rows)))
    shift = rng.integers(0, int(shift_minutes * 60_000_000) + 1, rows)
    at = pc.add(sample.column("occurred_at").cast(pa.int64()), pa.array(shift))
    sample = sample.drop_columns(["occurred_at"]).append_column(
        "event_timestamp", at.cast(pa.timestamp("us", tz="UTC"))
    )
    return sample.to_pandas(types_mapper={pa.string(): pd.StringDtype("pyarrow")}.get)


def _ticker(label: str, began: float, max_rss: int, done: threading.Event) -> None:
    # One line rewritten on a terminal; a line each in a log.
    end = "" if sys.stderr.isatty() else "\n"
    while not done.wait(5.0):
        rss = _rss_bytes()
        print(f"\r  {label}: {time.perf_counter() - began:6.0f} s, RSS {rss / GIB:5.2f} GiB",
              end=end, file=sys.stderr, flush=True)  # fmt: skip
        if rss > max_rss:
            print(f"\n  RSS {rss / GIB:.2f} GiB past the ceiling: stopping", file=sys.stderr)
            os._exit(3)


def measure(args: argparse.Namespace, rows: int) -> None:
    """Build the spine and run ``training_set`` on it in this process; print the figures."""
    from features.training import training_set

    world = _world(args)
    began = time.perf_counter()
    spine = spine_build(world, rows, args.shift_minutes)
    spine_s, spine_rss = time.perf_counter() - began, _rss_bytes()
    done = threading.Event()
    began = time.perf_counter()
    threading.Thread(
        target=_ticker,
        args=(f"{rows:,} rows", began, int(args.max_rss_gib * GIB), done),
        daemon=True,
    ).start()
    result = training_set(_config(world, args.memory_limit), spine, history=world / "history")
    seconds = time.perf_counter() - began
    done.set()
    if sys.stderr.isatty():
        print("\r" + " " * 60 + "\r", end="", file=sys.stderr)
    assert len(result) == rows
    filled = result["card_payments_24h"].notna().mean()
    print(f"  {rows:>10,} {spine_s:7.1f} s {spine_rss / GIB:6.2f} GiB {seconds:8.1f} s "
          f"{rows / seconds:10,.0f} {_peak_rss_bytes() / GIB:9.2f} GiB {filled:8.1%}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="100000,1000000")
    parser.add_argument("--days", type=float, default=28)
    parser.add_argument("--riders", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--snapshot-hours", type=float, default=6)
    parser.add_argument("--shift-minutes", type=float, default=360)
    parser.add_argument("--cache", default=str(REPO / "var" / "benchmarks"))
    parser.add_argument("--memory-limit", default="1GB", help="DuckDB's, per connection")
    parser.add_argument("--max-rss-gib", type=float, default=8)
    parser.add_argument("--measure", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure is not None:
        measure(args, args.measure)
        return
    world = prepare(args)
    payments = pq.ParquetFile(world / PAYMENTS).metadata.num_rows
    print(f"training sets over {world / 'history'} ({payments:,} payments), snapshots every "
          f"{args.snapshot_hours:g} h, DuckDB memory_limit {args.memory_limit}")  # fmt: skip
    print(f"  {'rows':>10} {'spine':>9} {'spine RSS':>10} {'training':>10} {'rows/s':>10} "
          f"{'peak RSS':>13} {'card filled':>8}")  # fmt: skip
    for rows in (int(r) for r in args.rows.split(",") if r):
        command = [sys.executable, "-m", "benchmarks.training_set", *sys.argv[1:]]
        subprocess.run([*command, "--measure", str(rows)], cwd=REPO, check=False)


if __name__ == "__main__":
    main()
