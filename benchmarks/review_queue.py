"""The analysts' pages with a big queue: server time of the review queue, a case and the
dashboard with N open reviews on PostgreSQL.

    python -m benchmarks.review_queue --reviews 10000 --requests 50

Starts PostgreSQL through devservices (or uses ``DATABASE_URL``), migrates, writes ``--reviews``
open reviews (scores spread over the last hour, as the scorer writes them, plus ten times as
many approved scores: the table the dashboard reads is mostly approvals), then requests each
page ``--requests`` times through Django's test client as an analyst (the whole view and
template, no network) and prints p50/p99/max in ms. The target for the queue: under 200 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from datetime import timedelta


def _fill(reviews: int) -> None:
    from django.utils import timezone

    from fraud.models import FraudScore, ReviewItem

    now = timezone.now()
    reasons = [{"feature": "card_payments_10m", "value": 6, "contribution": 1.1,
                "text": "6 payments on this card in the last 10 minutes"}]  # fmt: skip
    batch = []
    total = reviews * 11
    for i in range(total):
        at = now - timedelta(seconds=3600 * (total - i) / total)
        flagged = i % 11 == 0
        batch.append(
            FraudScore(
                event_id=uuid.uuid4(),
                payment_id=f"pay-{i}",
                card_id=f"card-{i % 5000:08d}",
                rider_id=f"rider-{i % 4000}",
                pickup_zone=f"Z-{i % 6 + 1}-{i % 5 + 1}",
                amount_cents=500 + (i * 37) % 9000,
                currency="EUR",
                occurred_at=at,
                scored_at=at,
                score=0.6 + (i % 40) / 100 if flagged else (i % 50) / 100,
                decision="review" if flagged else "approve",
                model_version="bench",
                role="champion",
                reasons=reasons if flagged else [],
                latency_ms=10 + i % 30,
            )
        )
        if len(batch) == 5000:
            FraudScore.objects.bulk_create(batch)
            batch = []
    FraudScore.objects.bulk_create(batch)
    ReviewItem.objects.bulk_create(
        ReviewItem(score_id=score_id, device_id="dev", ip="10.0.0.1")
        for score_id in FraudScore.objects.filter(decision="review").values_list("id", flat=True)
    )


def _time(client, url: str, requests: int) -> list[float]:
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reviews", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()
    from devservices import provide

    stack: list = []
    try:
        if not os.environ.get("DATABASE_URL"):
            os.environ.update(provide(["postgresql"], stack))
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-only-" + "x" * 40)
        os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver")
        import django

        django.setup()
        from django.core.management import call_command
        from django.test import Client

        from fraud.models import ReviewItem
        from fraud.services.reviews import analyst_ensure

        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        _fill(args.reviews)
        print(f"{ReviewItem.objects.count()} open reviews written in "
              f"{time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip
        client = Client()
        client.force_login(analyst_ensure(username="bench-analyst", password=uuid.uuid4().hex))
        case = ReviewItem.objects.order_by("id").first()
        print(f"{'page':<28}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}")
        for label, url in (
            ("review queue", "/fraud/reviews/"),
            ("queue, unclaimed, > €50", "/fraud/reviews/?claim=unclaimed&min_amount=50"),
            ("case", f"/fraud/reviews/{case.pk}/"),
            ("dashboard data", "/fraud/dashboard/data"),
        ):
            _time(client, url, 3)  # warm: templates, connections
            times = sorted(_time(client, url, args.requests))
            p99 = times[min(len(times) - 1, int(0.99 * len(times)))]
            print(f"{label:<28}{statistics.median(times):>8.1f}{p99:>8.1f}{times[-1]:>8.1f}")
    finally:
        for service in stack:
            service.stop()


if __name__ == "__main__":
    main()
