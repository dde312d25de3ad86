"""The backtest on a world unlike the simulator's: a file of card payments generated the way the
fraud-detection literature's reference simulator does (Le Borgne et al., *Reproducible Machine
Learning for Credit Card Fraud Detection*, its transaction generator), then ``manage.py
backtest`` on it, figures printed.

    python -m benchmarks.labelled_payments --customers 5000 --terminals 10000 --days 183
    python -m benchmarks.labelled_payments --quick

The world (facts from that book, the code written here): customers and terminals at random
points of a 100 x 100 square; a customer pays at the terminals within 5 units of it, a Poisson
number of times a day (mean drawn from 0 to 4), an amount drawn around its own mean (5 to 100,
spread half the mean), in daytime. Fraud: every payment above 220; every payment at 2 terminals
compromised each day (of 10,000; in proportion to the terminals here) for the next 28 days; a
third of the payments of 3 customers compromised each day (of 5,000) for the next 14 days, at
five times the amount. About 0.8 % of payments.

Mapped to the platform's file format: a customer is a rider with one card, a terminal a driver
(known at the capture, not at authorization), no zone, no coordinates. The book's baseline on
its own features (amount; customer count and mean amount over 1/7/30 days; terminal risk over
1/7/30 days with a 7-day delay) reaches AP 0.665 on 7 days trained, 7 of gap, 7 tested.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

START = datetime(2026, 4, 1, tzinfo=UTC)


def generate(
    *, customers: int, terminals: int, days: int, seed: int = 0, radius: float = 5.0
) -> pd.DataFrame:
    """Return the payments of the world above, sorted by time: ``timestamp`` (ISO 8601),
    ``rider``, ``card``, ``driver``, ``amount``, ``label``."""
    rng = np.random.default_rng(seed)
    where_c = rng.uniform(0, 100, (customers, 2))
    where_t = rng.uniform(0, 100, (terminals, 2))
    mean_amount = rng.uniform(5, 100, customers)
    std_amount = mean_amount / 2
    per_day = rng.uniform(0, 4, customers)
    # Terminals within the radius of each customer, by a grid of cells (not all pairs).
    cells: dict[tuple[int, int], list[int]] = {}
    for t, (x, y) in enumerate(where_t):
        cells.setdefault((int(x // radius), int(y // radius)), []).append(t)
    near: list[np.ndarray] = []
    for x, y in where_c:
        cx, cy = int(x // radius), int(y // radius)
        found = [
            t
            for dx in (-1, 0, 1)
            for dy in (-1, 0, 1)
            for t in cells.get((cx + dx, cy + dy), ())
            if (where_t[t, 0] - x) ** 2 + (where_t[t, 1] - y) ** 2 < radius**2
        ]
        near.append(np.array(found, dtype=np.int64))
    parts = []
    for day in range(days):
        counts = rng.poisson(per_day)
        who = np.repeat(np.arange(customers), counts)
        who = who[[len(near[c]) > 0 for c in who]] if len(who) else who
        seconds = rng.normal(43_200, 20_000, len(who))
        keep = (seconds > 0) & (seconds < 86_400)
        who, seconds = who[keep], seconds[keep]
        amounts = rng.normal(mean_amount[who], std_amount[who])
        negative = amounts < 0
        amounts[negative] = rng.uniform(0, mean_amount[who][negative] * 2)
        terminal = np.array([near[c][rng.integers(len(near[c]))] for c in who], dtype=np.int64)
        parts.append(
            pd.DataFrame(
                {
                    "seconds": day * 86_400 + seconds.astype(np.int64),
                    "day": day,
                    "customer": who,
                    "terminal": terminal,
                    "amount": np.round(amounts, 2),
                }
            )
        )
    frame = pd.concat(parts, ignore_index=True).sort_values("seconds", kind="mergesort")
    frame = frame.reset_index(drop=True)
    fraud = frame["amount"].to_numpy() > 220
    # Compromised terminals: 2 a day of 10,000, every payment there for 28 days.
    for day in range(days):
        for t in rng.choice(terminals, rng.poisson(2 * terminals / 10_000), replace=False):
            hit = (frame["terminal"] == t) & frame["day"].between(day, day + 27)
            fraud |= hit.to_numpy()
    # Compromised customers: 3 a day of 5,000, a third of their payments for 14 days, at 5x
    # the amount.
    amounts = frame["amount"].to_numpy().copy()
    for day in range(days):
        for c in rng.choice(customers, rng.poisson(3 * customers / 5_000), replace=False):
            rows = np.nonzero(
                ((frame["customer"] == c) & frame["day"].between(day + 1, day + 14)).to_numpy()
            )[0]
            if len(rows):
                chosen = rng.choice(rows, len(rows) // 3, replace=False)
                amounts[chosen] = np.round(amounts[chosen] * 5, 2)
                fraud[chosen] = True
    stamps = pd.to_datetime(START) + pd.to_timedelta(frame["seconds"], unit="s")
    return pd.DataFrame(
        {
            "timestamp": stamps.dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "rider": "customer-" + frame["customer"].astype(str),
            "card": "card-" + frame["customer"].astype(str),
            "driver": "terminal-" + frame["terminal"].astype(str),
            "amount": amounts,
            "label": fraud.astype(int),
        }
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--terminals", type=int, default=10000)
    parser.add_argument("--days", type=int, default=183)
    parser.add_argument("--train-start", default=None, help="default: 2026-04-01 + days - 21 - 30")
    parser.add_argument("--quick", action="store_true", help="1,000 customers, 70 days")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("var/benchmarks/backtest"))
    args = parser.parse_args(argv)
    if args.quick:
        args.customers, args.terminals, args.days = 1000, 2000, 70

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command

    began = time.perf_counter()
    frame = generate(
        customers=args.customers, terminals=args.terminals, days=args.days, seed=args.seed
    )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"payments-{args.customers}-{args.days}d.csv"
    frame.to_csv(path, index=False)
    print(
        f"generated {len(frame):,} payments, {frame['label'].mean():.2%} fraud, "
        f"in {time.perf_counter() - began:.0f} s: {path}",
        flush=True,
    )
    # The book's split: the last days, 7 trained, 7 of gap, 7 tested, after a month of history.
    start = args.train_start or (START + timedelta(days=args.days - 21 - 1)).date().isoformat()
    report = args.out / "report.json"
    call_command(
        "backtest",
        str(path),
        train_start=start,
        train_days=7,
        gap_days=7,
        test_days=7,
        label_delay_days=7.0,
        drop_known_cards=True,
        out=args.out,
    )
    body = json.loads(report.read_text())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"peak RSS {peak:.2f} GiB; backtest {body['seconds'] / 60:.1f} min")
    for c in body["checkpoints"]:
        print(
            f"{c['checkpoint']:>13}: AUC {c['auc']:.3f}  AP {c['ap']:.3f}  "
            f"CP@{body['options']['k']} {c['cp_at_k']:.3f}  ({c['test_rows']:,} payments, "
            f"{c['test_frauds']} fraud)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
