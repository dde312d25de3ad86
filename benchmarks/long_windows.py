"""Memory of a month's window per entity: the stream state's rows against a batch view's one
online row (docs/features.md, Long windows).

    python -m benchmarks.long_windows --entities 20000 --payments-per-day 2

On a Redis of its own (``devservices``): ``--entities`` cards each paying
``--payments-per-day`` times a day for 30 days, added to the window state of ``card_spending``
declared as a stream view (``RedisState``: a sorted set of rows per card, rows kept for the
longest window and the allowed lateness); then the same cards' one row of ``card_spending`` as
the batch view writes it to the Feast online store (``OnlineWriter``'s hash fields and values).
Printed: Redis ``used_memory`` grown by each, per entity and per 1,000,000 entities.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import uuid
from datetime import UTC, datetime

import redis
from feast.protos.feast.types.Value_pb2 import Value

from devservices import redis as redis_service
from features.definitions import CARD_SPENDING
from features.state import RedisState
from features.store import redis_entity_key, redis_hash_fields
from features.windows import Row, to_us

DAY_US = 86_400_000_000


def _used(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entities", type=int, default=20_000)
    parser.add_argument("--payments-per-day", type=float, default=2.0)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args(argv)
    service = redis_service.start()
    try:
        client = redis.Redis.from_url(service.url)
        stream_view = dataclasses.replace(CARD_SPENDING, mode="stream")
        state = RedisState(client, prefix="lw", views=[stream_view], lateness_us=60_000_000)
        start = to_us(datetime(2026, 4, 1, tzinfo=UTC))
        per_card = int(args.days * args.payments_per_day)
        step = int(DAY_US / args.payments_per_day)
        base = _used(client)
        began = time.perf_counter()
        batch: list[Row] = []
        for i in range(per_card):
            for card in range(args.entities):
                batch.append(
                    Row(
                        stream_view.name,
                        (f"card-{card:07d}",),
                        str(uuid.uuid4()),
                        start + i * step + card,
                        "payment",
                        {"amount_cents": 1000 + (card * 7 + i * 13) % 9000},
                    )
                )
                if len(batch) >= 5000:
                    state.add_and_read(rows=batch, version="v")
                    batch.clear()
        if batch:
            state.add_and_read(rows=batch, version="v")
        stream_bytes = _used(client) - base
        rows = client.zcard(next(iter(client.scan_iter(match="lw*", count=1000, _type="zset"))))
        print(
            f"stream state: {per_card} payments a card over {args.days} days "
            f"({rows} rows held), {args.entities:,} cards: {stream_bytes / 2**20:,.1f} MiB, "
            f"{stream_bytes / args.entities:,.0f} B a card, "
            f"{stream_bytes / args.entities * 1e6 / 2**30:,.2f} GiB per 1,000,000 "
            f"({time.perf_counter() - began:.0f} s)",
            flush=True,
        )
        client.flushall()
        base = _used(client)
        names = tuple(f.name for f in CARD_SPENDING.features)
        fields, ts_field = redis_hash_fields(CARD_SPENDING.name, names)
        stamp = Value()
        stamp.int64_val = start // 1_000_000
        pipe = client.pipeline(transaction=False)
        for card in range(args.entities):
            mapping = {ts_field: stamp.SerializeToString()}
            for n, field in enumerate(fields):
                value = Value()
                if names[n].startswith("card_payments"):
                    value.int64_val = per_card
                else:
                    value.double_val = 1234.5 + card + n
                mapping[field] = value.SerializeToString()
            key = redis_entity_key(("card_id",), (f"card-{card:07d}",), "lw", 3)
            pipe.hset(key, mapping=mapping)
            if len(pipe) >= 2000:
                pipe.execute()
        pipe.execute()
        batch_bytes = _used(client) - base
        print(
            f"batch view: one online row of {len(names)} features a card: "
            f"{batch_bytes / 2**20:,.1f} MiB, {batch_bytes / args.entities:,.0f} B a card, "
            f"{batch_bytes / args.entities * 1e6 / 2**30:,.2f} GiB per 1,000,000; the stream "
            f"state holds {stream_bytes / max(batch_bytes, 1):,.1f} times that"
        )
    finally:
        service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
