"""Simulator throughput: history-mode generation and load-mode rates against real Kafka.

    python -m benchmarks.simulator --days 7 --rates 1000,5000,20000 --seconds 10

- history: ``--days`` simulated days of the default world (2,000 riders, 200 drivers, every
  scenario) generated, encoded and written to Parquet with their ground truth, events/s;
  generation alone (events built and encoded, nothing written) is shown beside it;
- load: for each of ``--rates``, ``--seconds`` of the open-model publisher against a real Kafka
  broker (started through devservices unless ``KAFKA_BOOTSTRAP_SERVERS`` is set; 3 partitions per
  topic, ``acks=all``): achieved rate, max lag and errors.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

from events.backends.kafka import KafkaBus
from simulator.city import city_from_file
from simulator.config import SimConfig
from simulator.engine import Simulation
from simulator.history import history_write
from simulator.load import load_publish, topics_ensure
from simulator.report import Stats


def bench_history(days: float) -> None:
    config = SimConfig(seed=1)
    city = city_from_file()
    until = config.start + timedelta(days=days)

    t0 = time.perf_counter()
    count = sum(1 for item in Simulation(config, city).events(until=until) if item.event.encode())
    generate_s = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as out:
        stats = Stats(mode="history")
        t0 = time.perf_counter()
        summary = history_write(
            Simulation(config, city).events(until=until), out=Path(out), stats=stats
        )
        write_s = time.perf_counter() - t0
        size = sum(f.stat().st_size for f in Path(out).rglob("*.parquet"))
    fraud = sum(stats.fraud_payments.values())
    payments = stats.events["PaymentAuthorized"] + stats.events["PaymentDeclined"]
    print(f"history: {days:g} simulated days, {count:,} events, {payments:,} payments "
          f"({fraud:,} fraudulent), {summary['files']['ground_truth.parquet']:,} truth rows, "
          f"{size / 1e6:.1f} MB of Parquet")  # fmt: skip
    print(f"  generate + encode           {count / generate_s:10,.0f} events/s")
    print(f"  generate + write Parquet    {count / write_s:10,.0f} events/s")


def bench_load(bootstrap: str, rates: list[float], seconds: float) -> None:
    bus = KafkaBus(bootstrap_servers=bootstrap, timeout_s=10)
    print(f"load: {seconds:g} s per rate against Kafka at {bootstrap} (acks=all, 3 partitions)")
    print(f"  {'requested':>10} {'achieved':>10} {'events':>9} {'max lag':>9} {'end lag':>9} "
          f"{'errors':>7}")  # fmt: skip
    for rate in rates:
        prefix = f"bench-{uuid.uuid4().hex[:8]}"
        topics_ensure(bus, prefix=prefix, partitions=3)
        simulation = Simulation(SimConfig(seed=2), city_from_file())
        stats = Stats(mode="load", requested_rate=rate)
        load_publish(
            simulation.events(),
            bus=bus,
            rate=rate,
            duration_s=seconds,
            stats=stats,
            topic_prefix=prefix,
        )
        print(f"  {rate:10,.0f} {stats.achieved_rate:10,.0f} {stats.published:9,} "
              f"{stats.max_lag_s:8.3f}s {stats.lag_s:8.3f}s {stats.errors:7,}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=7)
    parser.add_argument("--rates", default="1000,5000,20000")
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    bench_history(args.days)
    rates = [float(r) for r in args.rates.split(",") if r]
    from devservices import provide

    started: list = []
    try:
        env = provide(["kafka"], started)
        bench_load(env["KAFKA_BOOTSTRAP_SERVERS"], rates, args.seconds)
    finally:
        for service in started:
            service.stop()


if __name__ == "__main__":
    main()
