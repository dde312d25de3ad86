"""Scoring: payment produced to fraud.scored readable, and scorer throughput, real services.

    python -m benchmarks.scoring --rates 200,1000 --seconds 60 --max-rate-probe

Once: PostgreSQL, Redis and Kafka from devservices (or ``DATABASE_URL``, ``REDIS_URL``,
``KAFKA_BOOTSTRAP_SERVERS`` when set: the benchmark deploys its model as the champion of that
database, so give it a throwaway one); migrations; a Feast project on the Redis online store; a
champion LightGBM model (``--rounds`` trees of 31 leaves over the ml room's model input columns,
trained here on synthetic rows: the cost of a prediction depends on the trees, not on what they
learnt), saved as a text model and deployed with ``fraud.services.deployment_set``. (No relay: the
scorer publishes ``fraud.scored.v1`` itself.)

Latency, per rate (after the throughput run, or a warm-up of 5,000 payments drained the same
way: a cold broker spends a core JIT-compiling; then ``--warm-seconds`` at the highest rate, not
counted, because a thousand small requests a second are code the broker compiles too), on a
fresh topic namespace (3 partitions):
``manage.py consume stream-features`` and ``consume fraud-scorer`` run as their own processes, as in
production (``--no-features`` leaves the stream processor out); a few payments go through
first, so the model is loaded and partitions are assigned before the clock starts; then a
producer process (its payments encoded before the clock starts) publishes
``payments.authorized.v1`` at the rate (an open model: payment ``i`` is due at
``start + i / rate``, stamped ``occurred_at`` = its due time, which its ``payment_id`` carries);
the first ``--settle-seconds`` of it are not counted (the broker compiles the paths of the new
topics' first records then). Neither the load generator nor this reader collects garbage
while it times.
This process reads the namespace's ``fraud.scored.v1``. **Latency = the moment this process reads a
payment's fraud.scored event minus the payment's due time**: the producer's own lag, the
scorer's poll and batch (feature read, prediction, explanation, one DB transaction, its
publish, the analyst push) and Kafka both ways. Stages, also from the due time, tell where it
goes: ``produced`` (the load generator sent the payment: its own lag), ``scored`` (the scorer's
``scored_at`` from the database afterwards: features read and model run, before the commit) and
``published`` (the fraud.scored record's timestamp: handed to the scorer's producer after the
commit); the rest is the broker and this reader.

Throughput (``--backlog N``, default 20,000; implied by ``--max-rate-probe``): N payments are
published first on a fresh namespace and their features computed by the stream processor; then
one ``manage.py consume fraud-scorer`` process drains them (``--scorers K``: K processes of one
group share the 3 partitions; ``scores`` says each payment was scored once). The CPU is the
group's, every process summed. Scorer throughput = payments
committed per second between the 5 % and 100 % marks (a count of FraudScore rows polled every 50
ms, so the process's start-up is not counted); pipeline throughput = the same for fraud.scored
readable. Scorer CPU = the scoring process's CPU seconds (every thread) between the same marks
per payment, and its feature log child's: the capacity of one process on a core of its own,
which the wall-clock rate on this machine's two shared cores (PostgreSQL, Kafka) is not.

Max rate (``--max-rate-probe``): short runs (``--probe-seconds``) at 50, 70 and 90 % of the
pipeline throughput; the highest one that kept up (every payment scored, p99 under
``--max-p99-ms``) is then run for ``--seconds`` and reported as ``max``.
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from math import nan
from pathlib import Path

PARTITIONS = 3
CARDS = 20_000
RIDERS = 10_000
WARM_UP = 20
WARM_BACKLOG = 5_000
REPO = Path(__file__).resolve().parent.parent


# Processes.


def _environment(stack: list, workdir: Path) -> dict[str, str]:
    from devservices import provide

    # Without the directories Feast sets for its own metrics when this process imports it: the
    # children would count theirs in files they all share.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMETHEUS_MULTIPROC")}
    env.update(provide(["postgresql", "redis", "kafka"], stack))
    env.update(
        EVENT_BUS="kafka",
        FEATURES_ONLINE_STORE="redis",
        FEAST_PROJECT=f"bench_scoring_{uuid.uuid4().hex[:8]}",
        FEAST_REGISTRY=f"sqlite:///{workdir / 'registry.sqlite3'}",
        FEATURES_DATA_DIR=str(workdir / "features"),
        ML_MODELS_DIR=str(workdir / "models"),
        VAR_DIR=str(workdir),
        EVENT_TOPIC_PARTITIONS=str(PARTITIONS),
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_SECRET_KEY=env.get("DJANGO_SECRET_KEY", "benchmark-only"),
        LOG_LEVEL=env.get("LOG_LEVEL", "WARNING"),
    )
    return env


def _manage(env: dict, *args: str, log_path: Path) -> subprocess.Popen:
    with open(log_path, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "manage.py", *args], cwd=REPO, env=env, stdout=out, stderr=out
        )


def _stop(process: subprocess.Popen, timeout: float = 60.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _payment(namespace: str, tag: str, i: int, due_at: float):
    from events.contracts import PaymentAuthorized, RiderContext

    card = f"{namespace}-card-{(i * 7919) % CARDS}"
    return PaymentAuthorized(
        occurred_at=datetime.fromtimestamp(due_at, UTC),
        # The due time rides in the id, so the fraud.scored event tells when it was due.
        payment_id=f"{namespace}-{tag}{i}-{int(due_at * 1_000_000)}",
        trip_id=f"{namespace}-t{i}",
        rider_id=f"{namespace}-r{i % RIDERS}",
        card_id=card,
        card_fingerprint=card,
        amount_cents=1000 + (i * 37) % 9000,
        currency="EUR",
        pickup_zone=f"Z-{1 + i % 6}-{1 + (i // 6) % 6}",
        distance_km=1.0 + (i % 150) / 10,
        context=RiderContext(device_id=f"device-{i % RIDERS}", ip="127.0.0.1"),
    )


def _collections_off() -> None:
    """Stop garbage collection in this process until ``gc.enable``, what it holds now out of
    the collector's sight: the load generator and the reader do not collect while they time,
    because a full collection walks Django and the encoded payments long enough to make the
    payments due meanwhile leave (or be read) late (docs/performance.md)."""
    gc.collect()
    gc.freeze()
    gc.disable()


def _produce(
    env: dict, topic: str, namespace: str, rate: float, count: int, done, settle: int = 0
) -> None:
    """Publish ``count`` payments at ``rate``/s (``0``: all at once); report on ``done``. At a
    rate the payments are encoded before the clock starts (their due times are known), so the
    load generator's own work stays out of the machine's way while it is measured, and each
    leaves when due: sent without waiting for the acknowledgements of the previous ones (which
    are checked at the end), as many web processes would. ``settle``: payments sent at the rate
    first, not counted (their ids are tagged ``s``, the counted ones ``p``)."""
    os.environ.update(env)
    import django

    django.setup()
    from events.bus import Record, bus_from_settings

    producer = bus_from_settings().producer()

    def record(i: int, due_at: float) -> Record:
        payment = (
            _payment(namespace, "s", i, due_at)
            if i < settle
            else _payment(namespace, "p", i - settle, due_at)
        )
        return Record(topic=topic, key=payment.card_id, value=payment.encode())

    encoded: list[Record] = []
    count += settle
    if rate > 0:
        # Start once every payment is encoded, at a budget of 60 µs each, above what encoding
        # takes (docs/performance.md).
        start = time.time() + 1.0 + count * 60e-6
        encoded = [record(i, start + i / rate) for i in range(count)]
        _collections_off()
        time.sleep(max(0.0, start - time.time()))
    else:
        start = time.time()
    sent = 0
    # The producer's lag, ms, of each payment: sent minus due.
    lags: list[float] = []
    sendings = []
    while sent < count:
        now = time.time()
        due = count if rate <= 0 else min(count, int((now - start) * rate) + 1)
        if due <= sent:
            time.sleep(min(0.002, (sent + 1) / rate + start - now))
            continue
        if rate > 0:
            records = encoded[sent:due]
            at = time.time()
            lags += [(at - start - i / rate) * 1000 for i in range(sent, due)]
        else:
            records = [record(i, now) for i in range(sent, due)]
        sendings.append(producer.send(records))
        sent = due
    errors = [e for sending in sendings for e in sending.result(timeout=60) if e is not None]
    gc.enable()
    if errors:
        raise SystemExit(f"publish failed: {errors[0]}")
    producer.close()
    done.put((sent / max(time.time() - start, 1e-9), lags[settle:]))


class ScoredReader:
    """Reads a new ``fraud.scored.v1`` topic; returns (payment_id, read time) pairs."""

    def __init__(self, bootstrap: str, topic: str):
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "bench-reader",
                "enable.auto.commit": False,
            }
        )
        # Created with the namespace; its metadata can take a moment to reach every broker.
        deadline = time.time() + 60
        while not (meta := self.consumer.list_topics(timeout=10).topics.get(topic)):
            if time.time() > deadline:
                self.consumer.close()
                raise SystemExit(f"{topic} does not exist after 60 s")
            time.sleep(0.5)
        # The topic is new with its namespace: everything on it is this run's.
        self.consumer.assign(
            [TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(meta.partitions)]
        )

    def read(self, timeout_ms: int = 20) -> list[tuple[str, float, float]]:
        """Return (payment id, read time, the scorer's send time) of the events read."""
        first = self.consumer.poll(timeout_ms / 1000)
        if first is None:
            return []
        records = [first, *self.consumer.consume(5000, 0)]
        now = time.time()
        return [
            # The record's timestamp: its producer's, when the scorer handed it over.
            (json.loads(record.value())["payment_id"], now, record.timestamp()[1] / 1000)
            for record in records
            if record.error() is None
        ]

    def close(self) -> None:
        self.consumer.close()


def _cpu_seconds(pid: int) -> tuple[float, float]:
    """Return the CPU seconds (user + system, every thread) of process ``pid`` and of its
    children together."""
    tick = os.sysconf("SC_CLK_TCK")

    def stat(p: str) -> list[str] | None:
        try:
            with open(f"/proc/{p}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()
        except OSError:
            return None

    own = stat(str(pid))
    if own is None:
        return float("nan"), float("nan")
    children = 0.0
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := stat(entry)) is not None and fields[1] == str(pid):
            children += int(fields[11]) + int(fields[12])
    return (int(own[11]) + int(own[12])) / tick, children / tick


def _due(payment_id: str) -> float:
    return int(payment_id.rsplit("-", 1)[1]) / 1_000_000


def _index(payment_id: str, prefix: str) -> int:
    """The payment's number in its run (``_payment``'s ``i``)."""
    return int(payment_id[len(prefix) :].split("-", 1)[0])


def _quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    ordered = sorted(values)
    return {
        "p50": ordered[len(ordered) // 2],
        "p99": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "max": ordered[-1],
    }


# The setup.


def policy_load(entries: int, rules: int) -> None:
    """Put ``entries`` list entries (cards, devices, IPs the load never uses: every payment is
    looked up, none matches) and ``rules`` active rules over the card's velocity features and
    the amount in force, as an operator's would be: the cost of applying them is measured,
    not that of the decisions they change."""
    from fraud.models import ListEntry, Rule

    kinds = ("card", "device", "ip", "rider")
    ListEntry.objects.bulk_create(
        ListEntry(
            kind=kinds[i % len(kinds)],
            value=f"bench-listed-{i}",
            action="block",
            stage="before" if i % 2 else "after",
            reason="benchmark",
        )
        for i in range(entries)
    )
    features = ("card_payments_10m", "card_payments_1h", "card_amount_cents_1h",
                "card_declines_1h", "card_distinct_devices_24h")  # fmt: skip
    Rule.objects.bulk_create(
        Rule(
            name=f"bench rule {i}",
            # Thresholds no synthetic payment reaches: every rule is evaluated, none acts.
            expression=f"{features[i % len(features)]} >= {10**9 + i} and amount_cents > {i * 10}",
            action="review",
            priority=i,
            mode="active",
        )
        for i in range(rules)
    )


def champion_deploy(workdir: Path, rounds: int) -> str:
    """Train a synthetic LightGBM champion, deploy it and return its version."""
    import lightgbm as lgb
    import numpy as np

    from fraud.artifacts import file_sha256
    from fraud.services import deployment_set
    from ml.train import model_features

    names = model_features()
    rng = np.random.default_rng(7)
    rows = 20_000
    x = rng.gamma(2.0, 3.0, size=(rows, len(names)))
    # Fraud leans on the first few columns (card velocity), so every tree has splits to make.
    signal_ = x[:, :3].sum(axis=1) / 6 + rng.normal(0, 1, rows)
    y = (signal_ > np.quantile(signal_, 0.97)).astype(int)
    params = {
        "objective": "binary",
        "num_leaves": 31,
        "learning_rate": 0.05,
        "num_threads": 1,
        "seed": 7,
        "deterministic": True,
        "verbose": -1,
    }
    booster = lgb.train(params, lgb.Dataset(x, y, feature_name=names), num_boost_round=rounds)
    version = f"bench-lgbm-{uuid.uuid4().hex[:8]}"
    path = workdir / f"{version}.txt"
    booster.save_model(str(path))
    deployment_set(
        model_version=version,
        artifact_path=str(path),
        sha256=file_sha256(path),
        feature_service="fraud_scoring_v1",
        feature_names=names,
        role="champion",
        review_threshold=0.5,
        decline_threshold=0.9,
    )
    return version


class Bench:
    def __init__(self, env: dict, workdir: Path, *, features: bool, settle_s: float = 0.0):
        self.env = env
        self.workdir = workdir
        self.features = features
        self.settle_s = settle_s
        self.logs = workdir / "logs"
        self.logs.mkdir(exist_ok=True)

    def _namespace(self) -> tuple[str, str]:
        """Return a new namespace and its payments topic; its topics exist (3 partitions)."""
        from events.bus import bus_from_settings
        from events.contracts import FraudScored, PaymentAuthorized, topic_name

        namespace = f"bench-{uuid.uuid4().hex[:8]}"
        topic = topic_name(namespace, PaymentAuthorized.topic)
        topics = [topic, topic_name(namespace, FraudScored.topic)]
        bus_from_settings().ensure_topics(topics, partitions=PARTITIONS)
        return namespace, topic

    def _reader(self, namespace: str) -> ScoredReader:
        from events.contracts import FraudScored, topic_name

        bootstrap = self.env["KAFKA_BOOTSTRAP_SERVERS"].split(",")[0]
        return ScoredReader(bootstrap, topic_name(namespace, FraudScored.topic))

    def _processor(self, namespace: str, *extra: str) -> subprocess.Popen:
        return _manage(
            self.env, "consume", "stream-features", "--topic-namespace", namespace,
            "--group", f"{namespace}-features", *extra,
            log_path=self.logs / "stream_features.log",
        )  # fmt: skip

    def _scorer(self, namespace: str, *extra: str) -> subprocess.Popen:
        return _manage(
            self.env, "consume", "fraud-scorer", "--topic-namespace", namespace,
            "--group", f"{namespace}-scorer", *extra, log_path=self.logs / f"score-{namespace}.log",
        )  # fmt: skip

    def latency(self, rate: float, seconds: float) -> dict:
        """Run payments at ``rate``/s for ``seconds``; return the latency figures."""
        from events.bus import Record, bus_from_settings

        namespace, topic = self._namespace()
        reader = self._reader(namespace)
        processes = [self._scorer(namespace)]
        if self.features:
            processes.append(self._processor(namespace))
        try:
            # Warm-up: the scorer has loaded its model and owns its partitions once these are out.
            producer = bus_from_settings().producer()
            warm = [_payment(namespace, "w", i, time.time()) for i in range(WARM_UP)]
            producer.publish([Record(topic=topic, key=p.card_id, value=p.encode()) for p in warm])
            producer.close()
            waiting = {p.payment_id for p in warm}
            deadline = time.time() + 180
            while waiting and time.time() < deadline:
                waiting -= {pid for pid, *_ in reader.read(100)}
                if processes[0].poll() is not None:
                    raise SystemExit(f"the scorer exited: see {self.logs}")
            if waiting:
                raise SystemExit(f"warm-up payments not scored within 180 s: see {self.logs}")

            count = int(rate * seconds)
            # The run's first seconds at the rate are not counted: its topics are new, and the
            # broker compiles (again) what their first records take, even after a warm-up
            # (docs/performance.md).
            settle = int(rate * self.settle_s)
            # Spawned, not forked: this process holds librdkafka's threads.
            spawn = multiprocessing.get_context("spawn")
            done = spawn.Queue()
            producing = spawn.Process(
                target=_produce, args=(self.env, topic, namespace, rate, count, done, settle)
            )
            producing.start()
            latencies: dict[str, float] = {}
            sent: dict[str, float] = {}
            achieved = producer_lags = None
            prefix = f"{namespace}-p"
            deadline = time.time() + self.settle_s + seconds + 60
            _collections_off()
            while len(latencies) < count and time.time() < deadline:
                for pid, read_at, sent_at in reader.read():
                    if pid.startswith(prefix) and pid not in latencies:
                        latencies[pid] = (read_at - _due(pid)) * 1000
                        sent[pid] = (sent_at - _due(pid)) * 1000
                if achieved is None and not done.empty():
                    achieved, producer_lags = done.get()
            if achieved is None:
                # Before the join: a child exits only once what it queued is read.
                achieved, producer_lags = done.get(timeout=60)
            producing.join()
        finally:
            gc.enable()
            reader.close()
            for process in processes:
                _stop(process)
        stages = self._stages(namespace)
        return {
            "rate": rate,
            "achieved": achieved,
            # Stages, each from the due time: the payment sent by the load generator
            # (``produced``), scored (``scored``), its fraud.scored event handed to the
            # scorer's producer after the commit (``published``).
            "produced": _quantiles(producer_lags),
            "payments": count,
            "read": len(latencies),
            **_quantiles(list(latencies.values())),
            # (seconds since the first payment was due, latency, produced, scored, published
            # ms); the load generator's lags are in payment order.
            "series": sorted(
                (
                    _due(pid),
                    ms,
                    producer_lags[_index(pid, prefix)],
                    stages["scored"].get(pid, nan),
                    sent[pid],
                )
                for pid, ms in latencies.items()
            ),
            "scored": _quantiles(list(stages["scored"].values())),
            "published": _quantiles(list(sent.values())),
            "degraded": stages["degraded"],
            "batch": self._batch_line(namespace),
        }

    def _stages(self, namespace: str) -> dict:
        from fraud.models import FraudScore

        prefix = f"{namespace}-p"
        rows = FraudScore.objects.filter(payment_id__startswith=prefix)
        scored = {
            pid: (scored_at - occurred_at).total_seconds() * 1000
            for pid, scored_at, occurred_at in rows.values_list(
                "payment_id", "scored_at", "occurred_at"
            )
        }
        degraded = rows.filter(degraded=True).count()
        return {"scored": scored, "degraded": degraded}

    def _batch_line(self, namespace: str) -> str:
        lines = (self.logs / f"score-{namespace}.log").read_text().splitlines()
        stopped = [line for line in lines if "fraud-scorer: stopped" in line]
        return stopped[-1].split("; ", 1)[-1] if stopped else "(no summary: see the log)"

    def throughput(self, count: int, scorers: int = 1) -> dict:
        """Publish ``count`` payments, compute their features, then time ``scorers`` scorer
        processes of one group draining them; return the figures."""
        from fraud.models import FraudScore

        namespace, topic = self._namespace()
        spawn = multiprocessing.get_context("spawn")
        done = spawn.Queue()
        producing = spawn.Process(
            target=_produce, args=(self.env, topic, namespace, 0, count, done)
        )
        producing.start()
        done.get(timeout=600)
        producing.join()
        if self.features:
            processor = self._processor(namespace, "--until-idle", "3")
            processor.wait()
        before = FraudScore.objects.order_by("-id").values_list("id", flat=True).first() or 0
        reader = self._reader(namespace)
        prefix = f"{namespace}-p"
        group = [self._scorer(namespace, "--until-idle", "5") for _ in range(scorers)]
        marks: dict[str, dict[float, float]] = {"committed": {}, "readable": {}}
        cpu: dict[float, tuple[float, float]] = {}
        read: set[str] = set()
        try:
            deadline = time.time() + 600
            while (len(read) < count or len(marks["committed"]) < 2) and time.time() < deadline:
                read.update(pid for pid, *_ in reader.read(20) if pid.startswith(prefix))
                committed = FraudScore.objects.filter(id__gt=before).count()
                now = time.time()
                for name, seen in (("committed", committed), ("readable", len(read))):
                    for share in (0.05, 1.0):
                        if seen >= share * count:
                            marks[name].setdefault(share, now)
                            if name == "committed" and share not in cpu:
                                each = [_cpu_seconds(p.pid) for p in group]
                                cpu[share] = (sum(c[0] for c in each), sum(c[1] for c in each))
                time.sleep(0.05)
        finally:
            reader.close()
            for scorer in group:
                _stop(scorer)
        rates = {}
        for name, at in marks.items():
            if len(at) == 2 and at[1.0] > at[0.05]:
                rates[name] = 0.95 * count / (at[1.0] - at[0.05])
            else:
                rates[name] = float("nan")
        # CPU per payment between the same marks: what one process needs of a core of its own,
        # whatever else this machine's two cores run meanwhile.
        if len(cpu) == 2:
            own = (cpu[1.0][0] - cpu[0.05][0]) / (0.95 * count)
            child = (cpu[1.0][1] - cpu[0.05][1]) / (0.95 * count)
        else:
            own = child = float("nan")
        scored = FraudScore.objects.filter(id__gt=before)
        return {
            "payments": count,
            "scorers": scorers,
            # One score per payment, whichever process scored it (unique on the event id).
            "scores": scored.count(),
            **rates,
            "cpu_us": own * 1e6,
            "log_cpu_us": child * 1e6,
            "batch": self._batch_line(namespace),
        }


STAGES = ("produced", "scored", "published")
HEADER = (
    f"{'rate/s':>8} {'achieved':>9} {'read/total':>15}{'p50':>8} {'p99':>8} {'max':>8}"
    + "".join(f"{name:>18}" for name in STAGES)
    + f"{'degraded':>9}"
)


def _row(label: str, r: dict) -> str:
    return (
        f"{label:>8} {r['achieved']:9.0f} {r['read']:>7d}/{r['payments']:<7d}"
        f"{r['p50']:8.1f} {r['p99']:8.1f} {r['max']:8.1f}"
        + "".join(f"{r[name]['p50']:9.1f}/{r[name]['p99']:<8.1f}" for name in STAGES)
        + f"{r['degraded']:9d}"
    )


def _series_write(path: Path, result: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    first = result["series"][0][0] if result["series"] else 0.0
    with path.open("w") as out:
        out.write("due_s,latency_ms,produced_ms,scored_ms,published_ms\n")
        for due, ms, produced, scored, published in result["series"]:
            out.write(f"{due - first:.4f},{ms:.2f},{produced:.2f},{scored:.2f},{published:.2f}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="200,1000", help="payments/s, comma-separated")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--backlog", type=int, default=None, help="payments for throughput")
    parser.add_argument("--max-rate-probe", action="store_true")
    parser.add_argument("--probe-seconds", type=float, default=15.0)
    parser.add_argument("--max-p99-ms", type=float, default=500.0)
    parser.add_argument("--rounds", type=int, default=200, help="trees of the champion")
    parser.add_argument("--no-features", action="store_true", help="no stream processor")
    parser.add_argument(
        "--scorers", type=int, default=1, help="scorer processes of one group draining the backlog"
    )
    parser.add_argument(
        "--warm-seconds", type=float, default=20.0,
        help="a run at the highest rate first, not counted (0: none)",
    )  # fmt: skip
    parser.add_argument(
        "--settle-seconds", type=float, default=10.0,
        help="each run's first seconds at its rate, on its new topics, not counted",
    )  # fmt: skip
    parser.add_argument(
        "--series", type=Path, default=None, metavar="DIR",
        help="write each payment's latency and stages (ms) by due time to DIR/latency-<rate>.csv",
    )  # fmt: skip
    parser.add_argument(
        "--policy", default="0,0", metavar="ENTRIES,RULES",
        help="list entries and active rules in force during the runs (default none)",
    )  # fmt: skip
    parser.add_argument(
        "--consistency-sample", type=int, default=2000, metavar="N",
        help="served vs offline over N of the run's logged vectors at the end (0: none)",
    )  # fmt: skip
    args = parser.parse_args()
    consistency = None
    backlog = args.backlog if args.backlog is not None else (20_000 if args.max_rate_probe else 0)
    stack: list = []
    results: list[tuple[str, dict]] = []
    drained = None
    with tempfile.TemporaryDirectory(prefix="bench-scoring-") as tmp:
        workdir = Path(tmp)
        try:
            env = _environment(stack, workdir)
            os.environ.update(env)
            import django

            django.setup()
            from django.core.management import call_command

            from features.repo import apply_repo
            from features.store import FeatureConfig

            call_command("migrate", verbosity=0)
            apply_repo(FeatureConfig.from_settings())
            version = champion_deploy(workdir, args.rounds)
            entries, rules = (int(n) for n in args.policy.split(","))
            if entries or rules:
                policy_load(entries, rules)
                print(f"policy: {entries} list entries, {rules} active rules", flush=True)
            bench = Bench(env, workdir, features=not args.no_features, settle_s=args.settle_seconds)
            print(f"champion {version}: {args.rounds} trees; logs in {bench.logs}", flush=True)
            if backlog:
                drained = bench.throughput(backlog, scorers=args.scorers)
                print(f"throughput: {drained}", flush=True)
                if entries or rules:
                    from fraud.models import FraudScore

                    matched = FraudScore.objects.exclude(matched=[]).count()
                    # The policy's cost is what is measured: none of it may act.
                    print(f"policy: {matched} scores matched a list entry or rule", flush=True)
            else:
                # A cold broker JIT-compiles for its first thousands of records
                # (docs/performance.md): warm it, and every process's caches, before the clock
                # runs.
                bench.throughput(WARM_BACKLOG)
            rates = [float(rate) for rate in args.rates.split(",")]
            if args.warm_seconds > 0:
                # A backlog is a few large requests; a rate, a thousand small ones a second, and
                # the broker compiles for those too, which inflates the first rate's tail
                # latency (docs/performance.md). A long-running broker has compiled them.
                warm = bench.latency(max(rates), args.warm_seconds)
                print(f"warm-up at {max(rates):.0f}/s for {args.warm_seconds:.0f} s (not "
                      f"counted): p50 {warm['p50']:.1f} ms, p99 {warm['p99']:.1f} ms",
                      flush=True)  # fmt: skip
            for rate in rates:
                result = bench.latency(float(rate), args.seconds)
                results.append((f"{float(rate):.0f}", result))
                if args.series is not None:
                    _series_write(args.series / f"latency-{float(rate):.0f}.csv", result)
                print(_row(results[-1][0], result), flush=True)
            if args.max_rate_probe and drained["readable"] == drained["readable"]:
                best = None
                for share in (0.5, 0.7, 0.9):
                    rate = round(share * drained["readable"], -1)
                    probe = bench.latency(rate, args.probe_seconds)
                    print(_row(f"probe{share:.1f}", probe), flush=True)
                    if probe["read"] < probe["payments"] or probe["p99"] > args.max_p99_ms:
                        break
                    best = rate
                if best is not None:
                    results.append(("max", bench.latency(best, args.seconds)))
            if args.consistency_sample:
                from features.consistency import served_consistency_run

                consistency = served_consistency_run(
                    FeatureConfig.from_settings(), limit=args.consistency_sample
                )
        finally:
            for service in stack:
                service.stop()
    print()
    print("End-to-end: payment due -> fraud.scored.v1 read from Kafka, ms; stages p50/p99 ms "
          "from the due time")  # fmt: skip
    print(HEADER)
    for label, result in results:
        print(_row(label, result))
    for label, result in results:
        print(f"{label:>8} scorer batches: {result['batch']}")
    if drained is not None:
        print()
        who = (
            "one scorer process"
            if drained["scorers"] == 1
            else f"{drained['scorers']} scorer processes"
        )
        print(f"Throughput, {who} draining {drained['payments']} payments "
              f"({drained['scores']} scores):")  # fmt: skip
        print(f"  scorer (FraudScore committed): {drained['committed']:.0f} payments/s")
        print(f"  pipeline (fraud.scored.v1 readable): "
              f"{drained['readable']:.0f} payments/s")  # fmt: skip
        print(
            f"  scorer CPU: {drained['cpu_us']:.0f} µs a payment in the scoring process(es) "
            f"({1e6 / drained['cpu_us']:.0f} payments per CPU-second), "
            f"{drained['log_cpu_us']:.0f} µs in its feature log process"
        )
        print(f"  scorer batches: {drained['batch']}")
    if consistency is not None:
        print()
        _consistency_print(consistency)


def _consistency_print(report) -> None:
    """Print the served-vs-offline report of the run: how many sampled vectors differ from the
    training rows of their requests, split by the scorer's mark (exact: none may differ;
    stale: the share the 20 ms wait could not make exact), and the features that differ most."""
    print(
        f"Served vs offline ({report.vectors} logged vectors of the run against their "
        f"training rows; {report.degraded} degraded, set aside):"
    )
    print(
        f"  {report.mismatched_vectors} of {report.compared} differ on at least one feature "
        f"({report.mismatched_share:.1%})"
    )
    lag = report.stale_lag_p99_ms
    print(
        f"  exact: {report.exact}, of which {report.exact_mismatched} differ "
        f"({report.exact_mismatched_share:.2%}); stale: {report.stale} "
        f"({report.stale_share:.2%} of compared), {report.stale_mismatched} differ"
        + (f", lag p99 {lag:.0f} ms" if lag is not None else "")
        + f"; unmarked: {report.unmarked}"
    )
    worst = sorted(report.features, key=lambda f: -f.mismatch_rate)[:5]
    shown = ", ".join(f"{f.name} {f.mismatch_rate:.1%}" for f in worst if f.mismatches)
    print(f"  most mismatched: {shown or 'none'}")


if __name__ == "__main__":
    main()
