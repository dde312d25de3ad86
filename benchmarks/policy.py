"""The cost of lists and rules in the scorer's batch (``fraud.policy.policy_apply``), alone.

    python -m benchmarks.policy --entries 1000 --rules 50

Builds ``--entries`` list entries (cards, devices, IPs and riders, before and after the model)
and ``--rules`` active rules over the card's velocity features and the amount, none of which
matches (their cost is what is measured, not the decisions they change), then applies them to
batches of 10 payments (a batch at 1,000 payments/s) and of 200 (draining a backlog), 300 times
each, and prints p50 and p99 a batch and a payment. No database, no services.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--rules", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DJANGO_DEBUG", "true")
    import django

    django.setup()
    import numpy as np

    from fraud.artifacts import service_feature_names
    from fraud.policy import Entry, Policy, PolicyRule, policy_apply, rule_compile, rule_symbols

    symbols = rule_symbols(tuple(service_feature_names("fraud_scoring_v1")))
    features = ("card_payments_10m", "card_payments_1h", "card_amount_cents_1h",
                "card_declines_1h", "card_distinct_devices_24h")  # fmt: skip
    rules = [
        PolicyRule(
            i,
            f"rule {i}",
            "review",
            i,
            False,
            rule_compile(f"{features[i % 5]} >= {10**9 + i} and amount_cents > {i * 10}", symbols),
        )
        for i in range(args.rules)
    ]
    kinds = ("card", "device", "ip", "rider")
    entries = [
        Entry(i, kinds[i % 4], f"listed-{i}", "block", "before" if i % 2 else "after")
        for i in range(args.entries)
    ]
    policy = Policy.build(entries, rules)
    rng = np.random.default_rng(1)
    print(f"{args.entries} list entries, {args.rules} rules")
    print(f"{'batch':>6}{'p50 a batch':>14}{'p99 a batch':>14}{'p50 a payment':>16}")
    for rows in (10, 200):
        requests = [
            {"card_id": f"c{i}", "rider_id": f"r{i}", "device_id": f"d{i}", "ip": "10.0.0.1",
             "amount_cents": 1000 + i}
            for i in range(rows)
        ]  # fmt: skip
        values = [{f: float(rng.integers(0, 5)) for f in features} for _ in range(rows)]
        decisions = ["approve"] * rows
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            policy_apply(policy, requests=requests, features=values, decisions=decisions, now_us=0)
            times.append((time.perf_counter() - started) * 1e6)
        times.sort()
        p50, p99 = statistics.median(times), times[int(0.99 * (len(times) - 1))]
        print(f"{rows:>6}{p50:>11.0f} µs{p99:>11.0f} µs{p50 / rows:>13.1f} µs")


if __name__ == "__main__":
    main()
