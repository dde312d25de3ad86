"""Feature freshness: event time to the feature visible in the online store, real Kafka + Redis.

    python -m benchmarks.feature_freshness --rates 1000,5000 --seconds 60

For each rate, on a fresh namespaced topic set (3 partitions) and Feast project:

- ``manage.py consume stream-features`` runs as its own process (Redis window state, Redis
  online store), or ``--processors N`` of them in one group, timed once they share the
  partitions;
- a producer process publishes ``payments.authorized.v1`` events at the rate (an open model: each
  event is due at ``start + i / rate`` and stamped ``occurred_at`` = its due time), over a pool of
  cards large enough that a sampled card rarely has a second event in flight;
- this process samples events (``--samples-per-second``) and polls the Feast online store (one
  ``get_online_features`` call for every pending sample, as a scorer would read) until the
  sampled event's card, a card no earlier event used, has a ``card_velocity`` row; freshness =
  that moment minus ``occurred_at``. The polling loop adds its own period (~1-5 ms) to each
  figure.

Kafka and Redis come from devservices unless ``KAFKA_BOOTSTRAP_SERVERS`` / ``REDIS_URL`` are set.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

PARTITIONS = 3
CARDS = 200_000
REPO = Path(__file__).resolve().parent.parent


def _produce(
    env: dict, topic: str, rate: float, seconds: float, samples, every: int, prefix: str = "fresh"
) -> None:
    """Publish ``rate`` events/s for ``seconds``; put every ``every``-th (card, µs) on samples."""
    os.environ.update(env)
    import django

    django.setup()
    from events.bus import Record, bus_from_settings
    from events.contracts import PaymentAuthorized, RiderContext

    producer = bus_from_settings().producer()
    context = RiderContext(device_id="bench-device", ip="127.0.0.1")
    total = int(rate * seconds)
    start = time.time()
    sent = 0
    max_lag = 0.0
    while sent < total:
        now = time.time()
        due = min(total, int((now - start) * rate) + 1)
        if due <= sent:
            time.sleep(min(0.002, (sent + 1) / rate + start - now))
            continue
        records = []
        for i in range(sent, due):
            due_at = start + i / rate
            # A sampled event uses a card never seen before: its row appearing online is that
            # event becoming visible, whatever clock resolution the store keeps timestamps at.
            card = f"{prefix}-{i}" if i % every == 0 else f"card-{(i * 7919) % CARDS}"
            event = PaymentAuthorized(
                occurred_at=datetime.fromtimestamp(due_at, UTC),
                payment_id=f"p{i}",
                trip_id=f"t{i}",
                rider_id=f"r{i % 50_000}",
                card_id=card,
                card_fingerprint=card,
                amount_cents=1000 + i % 4000,
                currency="EUR",
                pickup_zone="Z-1-1",
                context=context,
            )
            records.append(Record(topic=topic, key=card, value=event.encode()))
            if i % every == 0:
                samples.put((card, int(due_at * 1_000_000)))
        max_lag = max(max_lag, time.time() - (start + sent / rate))
        errors = [e for e in producer.publish(records) if e is not None]
        if errors:
            raise SystemExit(f"publish failed: {errors[0]}")
        sent = due
    producer.close()
    samples.put(("__done__", int(sent / (time.time() - start)), max_lag))


def _environment(stack: list, workdir: Path) -> dict[str, str]:
    from devservices import provide

    env = dict(os.environ)
    env.update(provide(["kafka", "redis"], stack))
    env.update(
        EVENT_BUS="kafka",
        FEATURES_ONLINE_STORE="redis",
        FEAST_REGISTRY=f"sqlite:///{workdir / 'registry.sqlite3'}",
        FEATURES_DATA_DIR=str(workdir / "features"),
        VAR_DIR=str(workdir),
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_SECRET_KEY=env.get("DJANGO_SECRET_KEY", "benchmark-only"),
        LOG_LEVEL=env.get("LOG_LEVEL", "WARNING"),
    )
    return env


def run_rate(
    env: dict, rate: float, seconds: float, samples_per_second: float, processors: int = 1
) -> dict:
    """Measure freshness at ``rate`` events/s with ``processors`` processes in one group;
    return the figures."""
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    env = {**env, "FEAST_PROJECT": namespace.replace("-", "_")}
    from events.batching import gc_settle
    from events.bus import bus_from_settings
    from events.contracts import PaymentAuthorized, topic_name
    from features.repo import apply_repo
    from features.store import FeatureConfig, feature_store

    topic = topic_name(namespace, PaymentAuthorized.topic)
    bus = bus_from_settings()
    bus.ensure_topics([topic], partitions=PARTITIONS)
    config = replace(FeatureConfig.from_settings(), project=env["FEAST_PROJECT"])
    apply_repo(config)
    store = feature_store(config)

    group = f"{namespace}-features"
    argv = [sys.executable, "manage.py", "consume", "stream-features", "--topic-namespace",
            namespace, "--group", group, "--until-idle", "5"]  # fmt: skip
    running = [subprocess.Popen(argv, cwd=REPO, env=env) for _ in range(processors)]
    _warm_up(env, topic, store, running[0])
    _members_wait(env["KAFKA_BOOTSTRAP_SERVERS"].split(",")[0], group, processors)
    # The reader is a long-running loop too: full collections of its Feast heap would pause
    # it for hundreds of milliseconds and count as staleness.
    gc_settle()
    queue: multiprocessing.Queue = multiprocessing.Queue()
    every = max(1, int(rate / samples_per_second))
    producer = multiprocessing.Process(
        target=_produce, args=(env, topic, rate, seconds, queue, every)
    )
    producer.start()
    pending: dict[str, int] = {}
    latencies: list[float] = []
    achieved = 0
    producer_lag = 0.0
    done = False
    deadline = time.time() + seconds + 60
    while (not done or pending) and time.time() < deadline:
        while not queue.empty():
            item = queue.get()
            if item[0] == "__done__":
                done, achieved, producer_lag = True, item[1], item[2]
            else:
                pending[item[0]] = item[1]
        if not pending:
            time.sleep(0.002)
            continue
        cards = list(pending)
        response = store.get_online_features(
            features=["card_velocity:card_payments_10m"],
            entity_rows=[{"card_id": c} for c in cards],
        ).to_dict()
        now_us = time.time() * 1_000_000
        for card, value in zip(cards, response["card_payments_10m"], strict=True):
            if value is not None:
                latencies.append((now_us - pending.pop(card)) / 1000)
        time.sleep(0.001)
    producer.join()
    for processor in running:
        processor.terminate()
    for processor in running:
        processor.wait(timeout=30)
    latencies.sort()
    return {
        "rate": rate,
        "processors": processors,
        "achieved": achieved,
        "producer_lag_s": producer_lag,
        "samples": len(latencies),
        "unseen": len(pending),
        "p50": statistics.median(latencies) if latencies else float("nan"),
        "p99": latencies[int(0.99 * (len(latencies) - 1))] if latencies else float("nan"),
        "max": latencies[-1] if latencies else float("nan"),
    }


def _members_wait(bootstrap: str, group: str, members: int) -> None:
    """Wait until ``members`` members of ``group`` own partitions, the group stable: the
    clock then measures the processors sharing the stream, not a rebalance."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="bench-freshness")
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            description = admin.describe_groups([group])[group]
            # A group rebalancing lists its members without their assignments.
            if description["group_state"] == "Stable":
                owning = sum(
                    1
                    for m in description["members"]
                    if m["member_assignment"]["assigned_partitions"]
                )
                if owning == members:
                    return
            time.sleep(0.5)
    finally:
        admin.close()
    raise SystemExit(f"{members} stream processors did not share the partitions of {group}")


def _warm_up(env: dict, topic: str, store, processor: subprocess.Popen) -> None:
    """Publish one event per partition and wait until all are online: the processor has joined
    its group and owns every partition, so the clock measures processing, not the group join
    (Kafka delays a new group's first assignment by 3 s)."""
    queue: multiprocessing.Queue = multiprocessing.Queue()
    warm = multiprocessing.Process(target=_produce, args=(env, topic, 50, 1, queue, 1, "warm"))
    warm.start()
    warm.join()
    cards = []
    while True:
        item = queue.get()
        if item[0] == "__done__":
            break
        cards.append(item[0])
    deadline = time.time() + 120
    while time.time() < deadline and processor.poll() is None:
        served = store.get_online_features(
            features=["card_velocity:card_payments_10m"],
            entity_rows=[{"card_id": c} for c in cards],
        ).to_dict()["card_payments_10m"]
        if all(v is not None for v in served):
            return
        time.sleep(0.05)
    raise SystemExit("the stream processor did not process the warm-up events")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="1000,5000")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--samples-per-second", type=float, default=50.0)
    parser.add_argument(
        "--processors", type=int, default=1, help="stream processor processes in one group"
    )
    args = parser.parse_args()
    stack: list = []
    with tempfile.TemporaryDirectory(prefix="bench-freshness-") as tmp:
        try:
            env = _environment(stack, Path(tmp))
            os.environ.update(env)
            import django

            django.setup()
            rows = [
                run_rate(env, float(rate), args.seconds, args.samples_per_second, args.processors)
                for rate in args.rates.split(",")
            ]
        finally:
            for service in stack:
                service.stop()
    print(f"{args.processors} stream processor process(es)")
    print(f"{'rate/s':>8} {'achieved/s':>10} {'samples':>8} {'unseen':>6} "
          f"{'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")  # fmt: skip
    for r in rows:
        print(f"{r['rate']:8.0f} {r['achieved']:10.0f} {r['samples']:8d} {r['unseen']:6d} "
              f"{r['p50']:8.1f} {r['p99']:8.1f} {r['max']:8.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
