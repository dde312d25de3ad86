"""``python -m devservices install|up``: install what the real services need, or run them.

``up`` starts PostgreSQL, Redis and Kafka on free loopback ports, writes the environment that
points the app at them to ``var/services.env`` (for ``make run ENV=var/services.env``), prints it,
and stops everything on Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from devservices import STARTERS, ServiceError
from devservices.base import log
from events.stopping import stop_on_signals

ROOT = Path(__file__).resolve().parent.parent


def install() -> int:
    from devservices import chromium, kafka, system

    system.ensure_packages()
    kafka.classpath()
    chromium.executable()
    log("system packages, Kafka jars and Chromium are in place")
    return 0


def up(names: list[str], env_file: Path) -> int:
    started = []
    failures = []
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        futures = [pool.submit(STARTERS[name]) for name in names]
        for future in futures:
            try:
                started.append(future.result())
            except ServiceError as exc:
                failures.append(str(exc))
    try:
        if failures:
            for failure in failures:
                log(f"FAILED {failure}")
            return 1
        env = {}
        for service in started:
            env.update(service.env)
        if "REDIS_URL" in env:
            # The feature platform follows the services: Redis online store and window state.
            env["FEATURES_ONLINE_STORE"] = "redis"
        if env.get("DATABASE_URL", "").startswith("postgres://"):
            url = env["DATABASE_URL"].replace("postgres://", "postgresql+psycopg://", 1)
            env["FEAST_REGISTRY"] = url
        env_file.parent.mkdir(parents=True, exist_ok=True)
        env_file.write_text("".join(f"{key}={value}\n" for key, value in sorted(env.items())))
        print("\n".join(f"{key}={value}" for key, value in sorted(env.items())), flush=True)
        for service in started:
            print(f"{service.name}: started in {service.startup_seconds:.2f} s", flush=True)
        print(f"environment written to {env_file}; Ctrl-C stops the services", flush=True)
        with stop_on_signals() as stop:
            while not stop.wait(1.0):
                dead = [s.name for s in started if not s.alive()]
                if dead:
                    log(f"service exited unexpectedly: {', '.join(dead)}")
                    return 1
        return 0
    finally:
        for service in started:
            service.stop()
        if started:
            log("services stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devservices", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("install", help="install Debian packages and resolve the Kafka jars")
    run = sub.add_parser("up", help="run the real services until Ctrl-C")
    run.add_argument("--only", default=",".join(STARTERS), help="comma-separated service names")
    run.add_argument("--env-file", type=Path, default=ROOT / "var" / "services.env")
    args = parser.parse_args(argv)
    try:
        if args.command == "install":
            return install()
        names = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = sorted(set(names) - set(STARTERS))
        if unknown:
            parser.error(f"unknown services: {', '.join(unknown)}")
        return up(names, args.env_file)
    except ServiceError as exc:
        log(f"FAILED {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
