"""The window state's serving read on Redis, alone: a scorer's batch add and evaluation.

    python -m benchmarks.state_read --calls 100 --batch 300 [--rows]

What `benchmarks.scoring` shows only as part of its "read" stage: the cost of one
``RedisState.serve_read`` for a batch of payments, split between the client (this thread's CPU)
and Redis (its own count of microseconds spent in the script, from ``INFO commandstats``), which
share the machine's two cores with everything else in that benchmark.

Once: a Redis from devservices and a state holding 20,000 cards with two payments each in the
day before. Then ``--calls`` reads, each adding ``--batch`` new payments of random cards and
evaluating each card's velocity at its payment's instant: in the script (the scorer's way,
``probes``), or with ``--rows`` by reading the cards' rows back for the client to evaluate
(``features.windows.value_at``), the way before the script evaluated. Printed: the median wall
time and client CPU of a call and Redis's time a call.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import uuid

CARDS = 20_000
T0 = 1_780_000_000_000_000
DAY_US = 86_400_000_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--batch", type=int, default=300, help="payments a call")
    parser.add_argument(
        "--rows", action="store_true", help="read rows back and evaluate them in Python"
    )
    args = parser.parse_args()
    import redis

    from devservices import redis as redis_service

    service = redis_service.start()
    try:
        client = redis.Redis.from_url(service.url)
        _run(client, args.calls, args.batch, rows_back=args.rows)
    finally:
        service.stop()


def _run(client, calls: int, size: int, *, rows_back: bool) -> None:
    from features.definitions import STREAM_VIEWS
    from features.state import RedisState
    from features.windows import Row, value_at

    views = {v.name: v for v in STREAM_VIEWS}
    state = RedisState(client, prefix="bench:", lateness_us=60_000_000)
    rng = random.Random(1)  # noqa: S311 (a reproducible history, not a secret)

    def payment(card: int, ts: int) -> Row:
        fields = {
            "amount_cents": rng.randint(500, 9000),
            "rider_id": f"rider-{rng.randint(0, 9999)}",
            "device_id": f"device-{rng.randint(0, 9999)}",
        }
        event_id = str(uuid.UUID(int=rng.getrandbits(128)))
        return Row("card_velocity", (f"card-{card}",), event_id, ts, "payment", fields)

    history = [payment(c, T0 - rng.randint(1, DAY_US)) for c in range(CARDS) for _ in range(2)]
    for start in range(0, len(history), 500):
        state.add_and_read(rows=history[start : start + 500], version=f"v{start}")
    client.config_resetstat()
    walls, cpus = [], []
    for call in range(calls):
        rows = [payment(rng.randrange(CARDS), T0 + (call * size + j) * 1000) for j in range(size)]
        probes: dict = {}
        for row in rows:
            probes.setdefault((row.view, row.key), []).append(row.ts)
        wall, cpu = time.perf_counter(), time.thread_time()
        if rows_back:
            read = state.serve_read(
                rows=rows, entities=list(probes), known={}, group="g", partitions=[]
            )
            for ref, instants in probes.items():
                held = read.entities[ref]
                for at in instants:
                    value_at(views[ref[0]], held.rows, at, floor=held.floor)
        else:
            state.serve_read(
                rows=rows, entities=[], known={}, group="g", partitions=[], probes=probes
            )
        walls.append((time.perf_counter() - wall) * 1000)
        cpus.append((time.thread_time() - cpu) * 1000)
    script = client.info("commandstats")["cmdstat_evalsha"]
    print(
        f"{'rows back' if rows_back else 'evaluated in the script'}, {size} payments a call: "
        f"wall p50 {statistics.median(walls):.2f} ms, client CPU p50 "
        f"{statistics.median(cpus):.2f} ms, Redis {script['usec_per_call'] / 1000:.2f} ms a call"
    )


if __name__ == "__main__":
    main()
