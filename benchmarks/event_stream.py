"""Relay and consumer throughput against real PostgreSQL and Kafka.

    python -m benchmarks.event_stream --events 20000 [--one-by-one]

Starts PostgreSQL and Kafka through devservices (or uses ``DATABASE_URL`` and
``KAFKA_BOOTSTRAP_SERVERS`` when set), commits ``--events`` outbox rows (as bookings would), then
measures:
- relay: outbox rows published to Kafka, acknowledged (acks=all) and marked, per second;
- consumer: the event-ledger consumer (decode; the batch's new events claimed and inserted in
  one transaction, or with ``--one-by-one`` a transaction an event as before its batch handler;
  offsets committed after each batch), events per second.
"""

from __future__ import annotations

import argparse
import os
import time


def _prepare_environment(stack: list) -> None:
    from devservices import provide

    os.environ.update(provide(["postgresql", "kafka"], stack))
    os.environ["EVENT_BUS"] = "kafka"
    os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-only")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument(
        "--one-by-one", action="store_true", help="the ledger without its batch handler"
    )
    args = parser.parse_args()
    stack: list = []
    try:
        _prepare_environment(stack)
        run(args.events, args.batch_size, one_by_one=args.one_by_one)
    finally:
        for service in stack:
            service.stop()


def run(count: int, batch_size: int, *, one_by_one: bool = False) -> None:
    from dataclasses import replace

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import transaction

    from events.bus import bus_from_settings
    from events.contracts import TOPICS, PaymentAuthorized, RiderContext
    from events.models import LedgerEntry, OutboxEvent
    from events.outbox import outbox_publish
    from events.registry import CONSUMERS
    from events.relay import relay_once
    from events.runner import ConsumerRunner

    call_command("migrate", verbosity=0)
    OutboxEvent.objects.all().delete()
    LedgerEntry.objects.all().delete()
    context = RiderContext(device_id="bench-device", ip="127.0.0.1")
    t0 = time.perf_counter()
    for start in range(0, count, 100):
        with transaction.atomic():
            for i in range(start, min(start + 100, count)):
                outbox_publish(
                    PaymentAuthorized(
                        payment_id=f"p{i}",
                        trip_id=f"t{i}",
                        rider_id=f"r{i % 997}",
                        card_id=f"c{i % 1999}",
                        card_fingerprint=f"f{i % 1999}",
                        amount_cents=1000 + i % 5000,
                        currency="EUR",
                        pickup_zone="Z-1-1",
                        context=context,
                    )
                )
    write_s = time.perf_counter() - t0

    bus = bus_from_settings()
    bus.ensure_topics(list(TOPICS), partitions=settings.EVENT_TOPIC_PARTITIONS)
    producer = bus.producer()
    t0 = time.perf_counter()
    published = 0
    while published < count:
        result = relay_once(producer, batch_size=batch_size)
        if result.failed:
            raise SystemExit(f"relay failed: {result.error}")
        published += result.published
    relay_s = time.perf_counter() - t0
    producer.close()

    spec = replace(
        CONSUMERS["event-ledger"],
        name=f"bench-ledger-{int(time.time())}",
        topics=(PaymentAuthorized.topic,),
        batch_size=batch_size,
        batch_handler=None if one_by_one else CONSUMERS["event-ledger"].batch_handler,
    )
    runner = ConsumerRunner(spec, bus)
    t0 = time.perf_counter()
    stats = runner.run(idle_timeout_s=2.0)
    consume_s = time.perf_counter() - t0 - 2.0  # minus the idle wait that ends the run

    print(f"events                      {count}")
    print(f"outbox writes (100/txn)     {count / write_s:8.0f} events/s")
    print(f"relay to Kafka (acks=all)   {count / relay_s:8.0f} events/s  (batch {batch_size})")
    print(f"event-ledger consumer       {stats.applied / consume_s:8.0f} events/s  "
          f"(applied {stats.applied}, duplicates {stats.duplicates})")  # fmt: skip


if __name__ == "__main__":
    main()
