"""Chaos soak: the whole pipeline on real services under load, its processes killed with -9 in
turn, then every effect accounted for.

    python -m benchmarks.soak --minutes 30
    python -m benchmarks.soak --minutes 5 --kill-every 45     # the CI version (tests/integration)

PostgreSQL, Redis and Kafka from devservices; migrations, the Feast project and a synthetic
champion as ``benchmarks.scoring`` deploys it. The application's processes run as in production
(``Procfile``): the web app (Daphne), the outbox relay, a Celery worker and the consumers
``event-ledger``, ``stream-features``, ``fraud-scorer`` and ``booking-verdicts``. The load,
for ``--minutes``: ``simulate load`` publishing the simulator's world (trips, payments, cards,
chargebacks) at ``--rate`` events/s, riders booking through ``POST /api/trips`` at
``--bookings`` a second, and ``--poison`` undecodable records put on the payments topic at
random moments.

Every ``--kill-every`` seconds one process, chosen in turn from a shuffled list (seeded), is
killed with SIGKILL and started again; its recovery is the time from the kill until it is back
at work: a consumer's group lag back under two seconds of traffic, the relay's unpublished
outbox under the same, the web app answering ``/healthz``, the worker a ping through the
broker. With ``--restart-services``, the
Kafka broker is stopped and started once on its own data (a third of the way in), and Redis
once (two thirds in; its state kept by an append-only file).

At the end the load stops, the pipeline drains, and the accounting must hold, else the exit
status is 1:
- every booking's outbox event was published and is in the ledger once; every event on the
  stream is in the ledger once;
- every payment on the stream is scored exactly once (one ``FraudScore``), and every served
  vector is in the feature log (no ``UnloggedScore`` left);
- each consumer's dead-letter topic holds exactly the injected poison, nothing else.
It prints the counts, each kill's recovery and the longest, and each process's memory growth
(the slope of its RSS over the second half of its last life, in % an hour).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.scoring import REPO, _environment, champion_deploy

CONSUMERS = ("event-ledger", "stream-features", "fraud-scorer", "booking-verdicts")
KILLABLE = ("web", "relay", "worker", *CONSUMERS)
# Processes whose progress is not a Kafka group's or the relay's: they are back when they answer.
ANSWERING = ("web", "worker")
RIDERS = 20
SAMPLE_S = 5.0
RECOVERY_TIMEOUT_S = 180.0
DRAIN_TIMEOUT_S = 300.0
# How long the accounting may take to read the stream back.
READ_TIMEOUT_S = 300.0
# The soak's own Kafka clients say nothing of the broker's restart (the pipeline's logs do).
QUIET = {"log_level": 0}
PICKUP = {"lat": 52.33, "lng": 4.845}
DROPOFF = {"lat": 52.39, "lng": 4.935}


@dataclass
class Component:
    """One of the application's processes: how to start it, its current process, its RSS."""

    name: str
    argv: list[str]
    process: subprocess.Popen | None = None
    started: float = 0.0
    # (seconds since start of this life, RSS bytes) of the current life.
    rss: list[tuple[float, int]] = field(default_factory=list)


class Pipeline:
    def __init__(self, env: dict[str, str], logs: Path, web_port: int):
        self.env = env
        self.logs = logs
        self.web_port = web_port
        manage = [sys.executable, "-X", "faulthandler", "manage.py"]
        self.components = {
            "web": Component(
                "web",
                [
                    sys.executable,
                    "-m",
                    "daphne",
                    "-b",
                    "127.0.0.1",
                    "-p",
                    str(web_port),
                    "config.asgi:application",
                ],
            ),
            "relay": Component("relay", [*manage, "relay"]),
            "worker": Component(
                "worker",
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "--app",
                    "config",
                    "worker",
                    "--queues",
                    "default,training",
                    "--pool",
                    "solo",
                    "--concurrency",
                    "1",
                    "--loglevel",
                    "WARNING",
                    "--hostname",
                    "soak-worker@%h",
                ],
            ),
            **{name: Component(name, [*manage, "consume", name]) for name in CONSUMERS},
        }

    def start(self, name: str) -> None:
        component = self.components[name]
        with (self.logs / f"{name}.log").open("ab") as out:
            component.process = subprocess.Popen(
                component.argv, cwd=REPO, env=self.env, stdout=out, stderr=out
            )
        component.started = time.monotonic()
        component.rss = []

    def kill9(self, name: str) -> None:
        process = self.components[name].process
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def stop_all(self) -> None:
        for component in self.components.values():
            if component.process is not None and component.process.poll() is None:
                component.process.terminate()
        for component in self.components.values():
            if component.process is not None:
                try:
                    component.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    component.process.kill()
                    component.process.wait()

    def sample_rss(self) -> None:
        for component in self.components.values():
            process = component.process
            if process is None or process.poll() is not None:
                continue
            rss = _rss(process.pid)
            if rss:
                component.rss.append((time.monotonic() - component.started, rss))

    def dead(self) -> list[str]:
        return [
            name
            for name, component in self.components.items()
            if component.process is None or component.process.poll() is not None
        ]


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0


def growth_per_hour(samples: list[tuple[float, int]]) -> float | None:
    """The least-squares slope of RSS over the second half of ``samples``, in % of its mean an
    hour; None with fewer than four samples there (too short a life to say)."""
    half = samples[len(samples) // 2 :]
    if len(half) < 4:
        return None
    n = len(half)
    mean_t = sum(t for t, _ in half) / n
    mean_r = sum(r for _, r in half) / n
    var = sum((t - mean_t) ** 2 for t, _ in half)
    if var == 0 or mean_r == 0:
        return None
    slope = sum((t - mean_t) * (r - mean_r) for t, r in half) / var
    return slope * 3600 / mean_r * 100


# Lag and health.


class Gauges:
    """How far behind each process is: consumer groups' lag on Kafka, the relay's backlog, the
    web app's health."""

    def __init__(self, bootstrap: str, web_port: int):
        self.bootstrap = bootstrap
        self.web_port = web_port
        self.consumer = None
        self._connect()

    def _connect(self) -> None:
        # Made again after a failure: a client that lived through the broker's restart may
        # keep answering from what it knew before.
        from confluent_kafka import Consumer
        from confluent_kafka.admin import AdminClient

        if self.consumer is not None:
            self.consumer.close()
        self.admin = AdminClient({"bootstrap.servers": self.bootstrap, **QUIET})
        self.consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"soak-gauges-{uuid.uuid4().hex[:6]}",
                **QUIET,
            }
        )

    def offsets(self, group: str) -> tuple[int, int] | None:
        """The group's committed offsets summed, and its lag over the partitions it has
        committed; None when the broker does not say."""
        from confluent_kafka import ConsumerGroupTopicPartitions

        try:
            future = self.admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])
            committed = next(iter(future.values())).result(timeout=10).topic_partitions
            total = lag = 0
            for tp in committed:
                if tp.offset < 0:
                    continue
                _, high = self.consumer.get_watermark_offsets(tp, timeout=10, cached=False)
                total += tp.offset
                lag += max(0, high - tp.offset)
        except Exception:
            self._connect()
            return None
        return total, lag

    def outbox_backlog(self) -> int:
        from django.db import connections

        from events.models import OutboxEvent

        try:
            return OutboxEvent.objects.filter(published_at__isnull=True).count()
        except Exception:
            connections.close_all()
            return 10**9

    def web_up(self) -> bool:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", self.web_port, timeout=2)
            connection.request("GET", "/healthz")
            return connection.getresponse().status == 200
        except OSError:
            return False

    def published(self) -> int:
        """The id of the newest outbox event the relay published."""
        from django.db import connections
        from django.db.models import Max

        from events.models import OutboxEvent

        try:
            newest = OutboxEvent.objects.filter(published_at__isnull=False).aggregate(Max("id"))
        except Exception:
            connections.close_all()
            return -1
        return newest["id__max"] or 0

    def mark(self, name: str):
        """Where ``name`` is now, to tell later whether it has done work since."""
        if name == "relay":
            return self.published()
        if name in ANSWERING:
            return None
        offsets = self.offsets(name)
        return offsets[0] if offsets else -1

    def worker_up(self) -> bool:
        """Whether a Celery worker answers a ping through the broker."""
        from config.celery import app

        try:
            return bool(app.control.ping(timeout=1.0))
        except Exception:
            return False

    def caught_up(self, name: str, slack: int, since=None) -> bool:
        """Whether ``name`` has done work since the mark ``since`` (when given) and is behind
        by no more than ``slack`` records."""
        if name == "web":
            return self.web_up()
        if name == "worker":
            return self.worker_up()
        if name == "relay":
            return self.outbox_backlog() <= slack and (since is None or self.published() > since)
        offsets = self.offsets(name)
        if offsets is None:
            return False
        committed, lag = offsets
        return lag <= slack and (since is None or committed > since)

    def describe(self, names, marks: dict) -> str:
        """Where each of ``names`` is, against its mark: for a report of what did not catch up."""
        parts = []
        for name in names:
            if name == "web":
                parts.append(f"web {'up' if self.web_up() else 'down'}")
            elif name == "worker":
                parts.append(f"worker {'answers' if self.worker_up() else 'silent'}")
            elif name == "relay":
                parts.append(
                    f"relay backlog {self.outbox_backlog()}, published {self.published()} "
                    f"(mark {marks.get(name)})"
                )
            else:
                parts.append(
                    f"{name} (committed, lag) {self.offsets(name)} (mark {marks.get(name)})"
                )
        return "; ".join(parts)

    def close(self) -> None:
        self.consumer.close()


# Load.


class Bookings(threading.Thread):
    """Riders booking through ``POST /api/trips`` at ``rate`` a second; a refused or unanswered
    request (the web app killed) is counted and the next one tried on time."""

    def __init__(
        self, port: int, riders: list[tuple[str, str]], rate: float, stop: threading.Event
    ):
        super().__init__(name="soak-bookings", daemon=True)
        self.port = port
        self.riders = riders
        self.rate = rate
        self.stop_event = stop
        self.answered: dict[int, int] = {}
        self.unanswered = 0

    def run(self) -> None:
        connection = None
        start = time.monotonic()
        i = 0
        while not self.stop_event.is_set():
            due = start + i / self.rate
            wait = due - time.monotonic()
            if wait > 0 and self.stop_event.wait(wait):
                return
            token, card = self.riders[i % len(self.riders)]
            i += 1
            body = json.dumps({"card_id": card, "pickup": PICKUP, "dropoff": DROPOFF})
            headers = {
                "Authorization": f"Bearer {token}",
                "X-Device-Id": f"soak-device-{i % len(self.riders)}",
                "Content-Type": "application/json",
            }
            try:
                if connection is None:
                    connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                connection.request("POST", "/api/trips", body, headers)
                response = connection.getresponse()
                response.read()
                self.answered[response.status] = self.answered.get(response.status, 0) + 1
            except (OSError, http.client.HTTPException):
                self.unanswered += 1
                if connection is not None:
                    connection.close()
                connection = None


def _riders() -> list[tuple[str, str]]:
    """Riders with a card and an API token each: (token, card id)."""
    from events.contracts import RiderContext
    from rideshare import services

    riders = []
    for i in range(RIDERS):
        rider = services.rider_ensure(username=f"soak-rider-{i}", password=uuid.uuid4().hex)
        context = RiderContext(device_id=f"soak-device-{i}", ip="127.0.0.1")
        card = services.card_add(
            rider=rider, number="4242424242424242", exp_month=12, exp_year=2099, cvc="123",
            context=context,
        )  # fmt: skip
        token = services.api_token_create(user=rider.user, context=context)
        riders.append((token, str(card.public_id)))
    return riders


def _poison(
    bootstrap: str, count: int, seconds: float, stop: threading.Event, rng: random.Random
) -> list[str]:
    """Put ``count`` undecodable records on the payments topic at random moments over
    ``seconds``; return their keys."""
    from confluent_kafka import Producer

    from events.contracts import PaymentAuthorized

    producer = Producer({"bootstrap.servers": bootstrap, **QUIET})
    moments = sorted(rng.uniform(0.1, 0.9) * seconds for _ in range(count))
    keys = []
    start = time.monotonic()
    for moment in moments:
        if stop.wait(max(0.0, start + moment - time.monotonic())):
            break
        key = f"soak-poison-{len(keys)}"
        producer.produce(PaymentAuthorized.topic, key=key, value=b"\x00not an event\xff")
        keys.append(key)
    producer.flush(30)
    return keys


# Accounting.


def account(poison: list[str]) -> tuple[dict, list[str]]:
    """Return the end counts and the accounting's failures (empty when everything holds)."""
    from events.bus import bus_from_settings, records_read
    from events.contracts import TOPICS, PaymentAuthorized, dead_letter_topic
    from events.deadletters import dead_letters_read
    from events.models import LedgerEntry, OutboxEvent
    from fraud.models import FraudScore, UnloggedScore

    failures = []
    counts: dict = {}
    outbox = OutboxEvent.objects.count()
    unpublished = OutboxEvent.objects.filter(published_at__isnull=True).count()
    outbox_ids = set(OutboxEvent.objects.values_list("event_id", flat=True))
    ledger_ids = set(LedgerEntry.objects.values_list("event_id", flat=True))
    counts.update(outbox_events=outbox, unpublished=unpublished, ledger_entries=len(ledger_ids))
    if unpublished:
        failures.append(f"{unpublished} outbox events never published")
    if missing := len(outbox_ids - ledger_ids):
        failures.append(f"{missing} booking events not in the ledger")

    stream_ids: set[str] = set()
    payment_ids: set[str] = set()
    copies = 0
    bus = bus_from_settings()
    for message in records_read(bus, list(TOPICS), reader="soak", timeout_s=READ_TIMEOUT_S):
        try:
            event_id = json.loads(message.value)["event_id"]
        except (ValueError, KeyError, TypeError):
            continue  # the poison
        if event_id in stream_ids:
            copies += 1
        stream_ids.add(event_id)
        if message.topic == PaymentAuthorized.topic:
            payment_ids.add(event_id)
    counts.update(stream_events=len(stream_ids), resent_copies=copies)
    ledger_str = {str(i) for i in ledger_ids}
    if missing := len(stream_ids - ledger_str):
        failures.append(f"{missing} events on the stream not in the ledger")

    scored = [str(i) for i in FraudScore.objects.values_list("event_id", flat=True)]
    unlogged = UnloggedScore.objects.count()
    counts.update(payments=len(payment_ids), scores=len(scored), unlogged=unlogged)
    if len(scored) != len(set(scored)):
        failures.append(f"{len(scored) - len(set(scored))} payments scored twice")
    if missing := len(payment_ids - set(scored)):
        failures.append(f"{missing} payments never scored")
    if extra := len(set(scored) - payment_ids):
        failures.append(f"{extra} scores of payments not on the stream")
    if unlogged:
        failures.append(f"{unlogged} served vectors not in the feature log")

    for consumer in ("event-ledger", "stream-features", "fraud-scorer"):
        letters = dead_letters_read(bus, dead_letter_topic(consumer), timeout_s=READ_TIMEOUT_S)
        keys = sorted(letter.key or "" for letter in letters)
        counts[f"dead letters {consumer}"] = len(keys)
        if sorted(set(keys)) != sorted(poison):
            failures.append(
                f"{consumer}'s dead letters are not the injected poison: {len(keys)} records, "
                f"{len(set(keys) - set(poison))} not injected, "
                f"{len(set(poison) - set(keys))} injected and missing"
            )
    return counts, failures


# The run.


def _wait(condition, timeout: float, step: float = 1.0) -> float | None:
    """Wait for ``condition``; return the seconds it took, or None past ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if condition():
            return time.monotonic() - start
        time.sleep(step)
    return None


def run(args) -> int:
    from devservices import kafka as kafka_service
    from devservices import redis as redis_service
    from devservices.base import free_port

    stack: list = []
    # Reproducible orders of kills and moments of poison (not secrets); one generator each,
    # so that the poison thread's draws do not change the order of the kills.
    rng = random.Random(args.seed)  # noqa: S311
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        workdir = Path(tmp)
        logs = args.logs or workdir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        pipeline = None
        try:
            # Redis with an append-only file, so that its restart keeps the state.
            redis = redis_service.start(persist=True)
            stack.append(redis)
            os.environ.update(redis.env)
            env = _environment(stack, workdir)
            web_port = free_port()
            env.update(
                DJANGO_ALLOWED_HOSTS="127.0.0.1",
                PROCESSOR_API_KEY="soak-processor-key",
                # Every rider books from this process's one address.
                RATE_LIMIT_BOOKING="100000/m",
                LOG_LEVEL="WARNING",
            )
            os.environ.update(env)
            import django

            django.setup()
            from django.core.management import call_command

            from events.bus import bus_from_settings
            from events.contracts import TOPICS
            from features.repo import apply_repo
            from features.store import FeatureConfig

            call_command("migrate", verbosity=0)
            apply_repo(FeatureConfig.from_settings())
            version = champion_deploy(workdir, args.rounds)
            bus_from_settings().ensure_topics(list(TOPICS), partitions=3)
            riders = _riders()
            bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"].split(",")[0]
            print(f"champion {version}; logs in {logs}", flush=True)

            pipeline = Pipeline(env, logs, web_port)
            for name in pipeline.components:
                pipeline.start(name)
            gauges = Gauges(bootstrap, web_port)
            if _wait(gauges.web_up, 60) is None:
                raise RuntimeError("the web app did not answer /healthz within 60 s")

            seconds = args.minutes * 60
            stop = threading.Event()
            load = subprocess.Popen(
                [sys.executable, "manage.py", "simulate", "load", "--rate", str(args.rate),
                 "--duration", str(seconds)],
                cwd=REPO, env=env, stdout=(logs / "load.log").open("ab"), stderr=subprocess.STDOUT,
            )  # fmt: skip
            bookings = Bookings(web_port, riders, args.bookings, stop)
            bookings.start()
            poison: list[str] = []
            poisoner = threading.Thread(
                target=lambda: poison.extend(
                    _poison(
                        bootstrap,
                        args.poison,
                        seconds,
                        stop,
                        random.Random(args.seed + 1),  # noqa: S311
                    )
                ),
                daemon=True,
            )
            poisoner.start()

            slack = int(2 * (args.rate + args.bookings * 2))
            order: list[str] = []
            recoveries: list[tuple[str, float | None]] = []
            restarts = {"kafka": seconds / 3, "redis": 2 * seconds / 3}
            if not args.restart_services:
                restarts = {}
            start = time.monotonic()
            next_kill = start + args.kill_every
            next_sample = start
            while time.monotonic() - start < seconds:
                now = time.monotonic()
                if now >= next_sample:
                    pipeline.sample_rss()
                    next_sample = now + SAMPLE_S
                for service, at in list(restarts.items()):
                    if now - start >= at:
                        del restarts[service]
                        t0 = time.monotonic()
                        marks = {n: gauges.mark(n) for n in KILLABLE}
                        found = next(s for s in stack if s.name == service)
                        found.stop(keep_data=True)
                        time.sleep(2)
                        module = kafka_service if service == "kafka" else redis_service
                        stack[stack.index(found)] = module.start(workdir=found.workdir)
                        took = _wait(
                            lambda m=marks: all(gauges.caught_up(n, slack, m[n]) for n in KILLABLE),
                            RECOVERY_TIMEOUT_S,
                        )
                        total = None if took is None else time.monotonic() - t0
                        recoveries.append((f"{service} restart", total))
                        print(f"{service} restarted: caught up in {_seconds(total)}", flush=True)
                        if took is None:
                            print("  " + gauges.describe(KILLABLE, marks), flush=True)
                if now >= next_kill:
                    if not order:
                        order = list(KILLABLE)
                        rng.shuffle(order)
                    name = order.pop()
                    t0 = time.monotonic()
                    pipeline.kill9(name)
                    since = gauges.mark(name)
                    pipeline.start(name)
                    took = _wait(
                        lambda n=name, m=since: gauges.caught_up(n, slack, m),
                        RECOVERY_TIMEOUT_S,
                        step=0.25,
                    )
                    total = None if took is None else time.monotonic() - t0
                    recoveries.append((name, total))
                    print(
                        f"{t0 - start:6.0f} s  killed {name}: back in {_seconds(total)}",
                        flush=True,
                    )
                    if took is None:
                        print("  " + gauges.describe([name], {name: since}), flush=True)
                    next_kill = time.monotonic() + args.kill_every
                if dead := pipeline.dead():
                    tails = "\n".join(
                        f"--- {name}:\n{_tail(logs / f'{name}.log')}" for name in dead
                    )
                    raise RuntimeError(f"processes died on their own: {dead}\n{tails}")
                time.sleep(0.5)

            stop.set()
            load.wait(timeout=60)
            bookings.join(timeout=30)
            poisoner.join(timeout=30)
            from fraud.models import UnloggedScore

            drained = _wait(
                lambda: (
                    all(gauges.caught_up(n, 0) for n in KILLABLE if n not in ANSWERING)
                    and not UnloggedScore.objects.exists()
                ),
                DRAIN_TIMEOUT_S,
                step=2.0,
            )
            print(f"drained in {_seconds(drained)}", flush=True)
            counts, failures = account(poison)
            gauges.close()
        finally:
            if pipeline is not None:
                pipeline.stop_all()
            for service in reversed(stack):
                service.stop()

    print("\nCounts")
    print(f"  bookings answered {dict(sorted(bookings.answered.items()))}, "
          f"unanswered {bookings.unanswered}")  # fmt: skip
    for name, value in counts.items():
        print(f"  {name}: {value}")
    print("Recoveries (kill -9 to caught up)")
    for name, took in recoveries:
        print(f"  {name:<18} {_seconds(took)}")
    known = [took for _, took in recoveries if took is not None]
    print(f"  longest: {_seconds(max(known)) if known else '-'}"
          f"{'' if len(known) == len(recoveries) else ', and some never caught up'}")  # fmt: skip
    print("Memory (RSS of each process's last life; growth over its second half)")
    for component in pipeline.components.values():
        if not component.rss:
            continue
        growth = growth_per_hour(component.rss)
        last = component.rss[-1][1] / 2**20
        print(f"  {component.name:<18} {last:7.1f} MiB  "
              f"{'-' if growth is None else f'{growth:+.1f} %/h'} "
              f"over {component.rss[-1][0]:.0f} s")  # fmt: skip
    if server_errors := sum(n for status, n in bookings.answered.items() if status >= 500):
        failures.append(f"{server_errors} bookings answered with a server error")
    if len(known) < len(recoveries):
        failures.append("a process did not catch up after a kill")
    if drained is None:
        failures.append(f"the pipeline did not drain within {DRAIN_TIMEOUT_S:.0f} s")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("OK: every effect accounted for")
    return 0


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=500.0, help="simulated events a second")
    parser.add_argument("--bookings", type=float, default=2.0, help="API bookings a second")
    parser.add_argument("--kill-every", type=float, default=120.0, help="seconds")
    parser.add_argument("--poison", type=int, default=5, help="undecodable payment records")
    parser.add_argument("--restart-services", action="store_true", help="Kafka and Redis once")
    parser.add_argument("--rounds", type=int, default=100, help="trees of the champion")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--logs", type=Path, default=None, help="keep the processes' logs in this directory"
    )
    sys.exit(run(parser.parse_args()))


if __name__ == "__main__":
    main()
