"""Booking API latency (p50/p99) with the relay draining to Kafka at the same time.

    python -m benchmarks.booking_api --requests 500 --clients 2
    python -m benchmarks.booking_api --requests 4000 --clients 8 --server gunicorn --workers 2

Starts PostgreSQL and Kafka through devservices (or uses ``DATABASE_URL`` and
``KAFKA_BOOTSTRAP_SERVERS`` when set), the web app (``--server``: the Procfile's gunicorn with
``--workers`` uvicorn workers, or one Daphne process; ``--pool N``: ``DATABASE_POOL_SIZE``)
and the outbox relay as their own processes, then ``--clients`` threads book trips through
``POST /api/trips`` (card authorisation, trip, two outbox events per booking) over keep-alive
HTTP on loopback, bounded by ``--requests`` and ``--max-seconds``. Prints latency
p50/p99/max, the requests over 250 ms, bookings per second, and how long the relay took to
put every committed event on Kafka after the last booking.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from devservices import provide
from devservices.base import free_port, port_open

ROOT = Path(__file__).resolve().parent.parent


def _services(stack: list) -> dict[str, str]:
    env = provide(["postgresql", "kafka"], stack)
    env.update(
        EVENT_BUS="kafka",
        DJANGO_SECRET_KEY="benchmark-only-" + "x" * 40,
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="config.settings",
        # Each client books as fast as the app answers: the booking path is measured, not the
        # per-rider rate limit (frontend.limits), which would refuse most of it.
        RATE_LIMIT_BOOKING="",
    )
    return env


def _setup_rider(env: dict[str, str], clients: int) -> list[tuple[str, str]]:
    """Migrate, then create one rider, card and API token per client; return (token, card)."""
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    from events.contracts import RiderContext
    from rideshare import services
    from rideshare.models import Rider

    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model

    out = []
    context = RiderContext(device_id="bench", ip="127.0.0.1")
    for n in range(clients):
        username = f"bench-{int(time.time())}-{n}"
        user = get_user_model().objects.create_user(username=username, password=None)
        rider = Rider.objects.create(user=user, last_device_id="bench")
        card = services.card_add(
            rider=rider, number="4242424242424242", exp_month=12, exp_year=2099, cvc="123",
            context=context,
        )  # fmt: skip
        token = services.api_token_create(user=user, context=context)
        out.append((token, str(card.public_id)))
    return out


def _client_loop(port: int, token: str, card: str, count: int, deadline: float, out: list):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = json.dumps(
        {
            "card_id": card,
            "pickup": {"lat": 52.33, "lng": 4.845},
            "dropoff": {"lat": 52.39, "lng": 4.935},
        }
    )
    headers = {
        "Authorization": f"Bearer {token}",
        "X-Device-Id": "bench",
        "Content-Type": "application/json",
    }
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        t0 = time.perf_counter()
        conn.request("POST", "/api/trips", body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        elapsed = time.perf_counter() - t0
        if response.status != 201:
            raise SystemExit(f"booking failed: HTTP {response.status}")
        out.append(elapsed)
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500, help="bookings in all")
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--max-seconds", type=float, default=120)
    parser.add_argument("--server", choices=("gunicorn", "daphne"), default="gunicorn")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn's uvicorn workers")
    parser.add_argument("--pool", type=int, default=4, help="DATABASE_POOL_SIZE (0: none)")
    args = parser.parse_args()
    stack: list = []
    processes: list[subprocess.Popen] = []
    try:
        env = _services(stack)
        riders = _setup_rider(env, args.clients)
        port = free_port()
        child_env = {**os.environ, **env}
        bin_dir = Path(sys.executable).parent
        child_env["DATABASE_POOL_SIZE"] = str(args.pool)
        if args.server == "daphne":
            web = [str(bin_dir / "daphne"), "--bind", "127.0.0.1", "--port", str(port),
                   "config.asgi:application"]  # fmt: skip
        else:
            web = [str(bin_dir / "gunicorn"), "config.asgi:application", "--preload",
                   "--worker-class", "uvicorn_worker.UvicornWorker", "--workers",
                   str(args.workers), "--bind", f"127.0.0.1:{port}"]  # fmt: skip
        processes.append(
            subprocess.Popen(
                web, cwd=ROOT, env=child_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        )
        processes.append(
            subprocess.Popen(
                [sys.executable, "manage.py", "relay"],
                cwd=ROOT, env=child_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while not port_open(port):
            if time.monotonic() > deadline:
                raise SystemExit("the web process did not start")
            time.sleep(0.1)

        from events.outbox import outbox_backlog

        latencies: list[float] = []
        per_client = args.requests // args.clients
        stop_at = time.monotonic() + args.max_seconds
        threads = [
            threading.Thread(
                target=_client_loop, args=(port, token, card, per_client, stop_at, latencies)
            )
            for token, card in riders
        ]
        t0 = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - t0
        t_drain = time.perf_counter()
        while outbox_backlog().events and time.perf_counter() - t_drain < 120:
            time.sleep(0.05)
        drain = time.perf_counter() - t_drain
        left = outbox_backlog().events

        latencies.sort()
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        server = (
            "daphne" if args.server == "daphne" else f"gunicorn, {args.workers} uvicorn workers"
        )
        print(f"web                      {server}, database pool {args.pool or 'off'}")
        print(f"bookings                 {len(latencies)} ({args.clients} clients, keep-alive)")
        print(f"latency p50              {statistics.median(latencies) * 1000:7.1f} ms")
        print(f"latency p99              {p99 * 1000:7.1f} ms")
        print(f"latency max              {latencies[-1] * 1000:7.1f} ms")
        slow = sum(1 for latency in latencies if latency > 0.25)
        print(f"over 250 ms              {slow:7d} requests")
        print(f"throughput               {len(latencies) / wall:7.1f} bookings/s")
        print(f"relay caught up after    {drain * 1000:7.0f} ms past the last booking "
              f"({left} events left)")  # fmt: skip
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
        for service in stack:
            service.stop()


if __name__ == "__main__":
    main()
