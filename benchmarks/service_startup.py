"""Start each real service several times and print its start-up time (p50 and max, seconds).

    python -m benchmarks.service_startup --runs 5

Start-up runs from the call to ``start()`` until the service answers a real request (Kafka: a
metadata and describe-cluster round trip; Redis: PING; PostgreSQL: SELECT 1; Chromium: a launched
browser). Kafka's first run also pays for Maven resolving the jars unless ~/.m2 is warm.
"""

from __future__ import annotations

import argparse
import statistics
import time

from devservices import STARTERS, chromium


def _chromium_seconds() -> float:
    from playwright.sync_api import sync_playwright

    t0 = time.monotonic()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(**chromium.launch_options())
        seconds = time.monotonic() - t0
        browser.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[float]] = {}
    for name, start in STARTERS.items():
        for _ in range(args.runs):
            service = start()
            results.setdefault(name, []).append(service.startup_seconds)
            service.stop()
    results["chromium"] = [_chromium_seconds() for _ in range(args.runs)]
    print(f"{'service':<11} {'runs':>4} {'p50 s':>7} {'max s':>7}")
    for name, seconds in results.items():
        p50 = statistics.median(seconds)
        print(f"{name:<11} {len(seconds):>4} {p50:>7.2f} {max(seconds):>7.2f}")


if __name__ == "__main__":
    main()
