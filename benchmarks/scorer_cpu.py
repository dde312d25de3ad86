"""The scorer's batch path, CPU a payment, in this one process on the real services.

    python -m benchmarks.scorer_cpu --batches 80 --batch 300 [--profile var/scorer.prof]

What `benchmarks.scoring` cannot show from one run to the next: that benchmark runs every
component as its own process on the two shared cores, and the machine's phase moves its
throughput by more than a round of optimisation does. This one times only the scorer's own work
on this thread, so two builds compare in alternating runs of a minute each (run it from each
build's tree).

Once: PostgreSQL, Redis and Kafka from devservices, migrations, a Feast project on the Redis
online store and a 200-tree champion (as `benchmarks.scoring` deploys them). Then ``--batches``
batches of ``--batch`` of that benchmark's payments (20,000 cards, 10,000 riders), made into
consumed records without a broker round trip, each run through ``Scorer._prepare`` (decode,
feature read with the batch's payments added to the window state, model, drafts) and
``Recording.record_now`` (the scores' insert, the verdicts' send). Printed: the median and the
10th percentile of each part's thread CPU a payment, over the batches after the first 10, and
the scorer's own stage line. ``--profile FILE`` also runs the counted batches under cProfile,
writes its stats to FILE (``python -m pstats FILE``) and prints the 25 functions that took the
most time of their own (the CPU figures are then the profiled ones: compare builds without it).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks.scoring import PARTITIONS, _environment, _payment, champion_deploy

WARM_BATCHES = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=80)
    parser.add_argument("--batch", type=int, default=300, help="payments a batch")
    parser.add_argument("--profile", type=Path, help="write the counted batches' cProfile here")
    args = parser.parse_args()
    if args.batches <= WARM_BATCHES:
        parser.error(f"--batches must be more than the {WARM_BATCHES} not counted")
    stack: list = []
    with tempfile.TemporaryDirectory(prefix="bench-scorer-cpu-") as tmp:
        try:
            os.environ.update(_environment(stack, Path(tmp)))
            _run(Path(tmp), args.batches, args.batch, args.profile)
        finally:
            for service in reversed(stack):
                service.stop()


def _run(workdir: Path, batches: int, size: int, profile: Path | None = None) -> None:
    import django

    django.setup()
    from django.core.management import call_command

    from events.bus import Message, bus_from_settings
    from events.contracts import PaymentAuthorized, topic_name
    from events.streaming import ConsumerOptions
    from features.repo import apply_repo
    from features.store import FeatureConfig
    from fraud.scorer.step import consumer_build

    call_command("migrate", verbosity=0)
    apply_repo(FeatureConfig.from_settings())
    champion_deploy(workdir, 200)
    namespace = f"cpu-{uuid.uuid4().hex[:8]}"
    topic = topic_name(namespace, PaymentAuthorized.topic)
    bus = bus_from_settings()
    bus.ensure_topics([topic], partitions=PARTITIONS)
    scorer = consumer_build(bus, ConsumerOptions(namespace=namespace, group=f"{namespace}-s"))
    scorer.open()
    scorer.ready()
    models = scorer.watcher.current()
    start = time.time() - 3600
    offsets = [0] * PARTITIONS
    records = []
    for b in range(batches):
        batch = []
        for i in range(b * size, (b + 1) * size):
            payment = _payment(namespace, "p", i, start + i * 0.001)
            partition = i % PARTITIONS
            batch.append(
                Message(
                    topic=topic, partition=partition, offset=offsets[partition],
                    key=payment.card_id, value=payment.encode(),
                    timestamp_ms=int(time.time() * 1000),
                )
            )  # fmt: skip
            offsets[partition] += 1
        records.append(batch)
    # As the scorer's loop does (``events.batching``): what is loaded stays out of collections.
    gc.collect()
    gc.freeze()
    prepare, record = [], []
    profiler = cProfile.Profile() if profile else None
    for b, batch in enumerate(records):
        if profiler is not None and b == WARM_BATCHES:
            profiler.enable()
        at = time.thread_time()
        prepared = scorer._prepare(batch, models)
        scored = time.thread_time()
        scorer.recording.record_now(prepared)
        done = time.thread_time()
        if b >= WARM_BATCHES:
            prepare.append((scored - at) / size * 1e6)
            record.append((done - scored) / size * 1e6)
        print(f"\rbatch {b + 1}/{batches}", end="", flush=True)
    print()
    if profiler is not None:
        profiler.disable()
        profile.parent.mkdir(parents=True, exist_ok=True)
        profiler.dump_stats(profile)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    scorer.flush(force=True)
    for name, values in (("prepare", prepare), ("record", record)):
        tenth = sorted(values)[len(values) // 10]
        print(f"{name}: {statistics.median(values):.1f} µs a payment (p10 {tenth:.1f})")
    print("stages p50/p99 ms:", scorer.stats.stages_line())
    scorer.close()


if __name__ == "__main__":
    main()
