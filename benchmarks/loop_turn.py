"""The loop turning in the demo: from a drift in the city to a trigger, a trained, registered and
gated candidate, timed.

    python -m benchmarks.loop_turn [--minutes 24] [--drift-at 12] [--speedup 60]
    python -m benchmarks.loop_turn --read [VAR_DIR]

Runs ``make demo-loop`` (every process on the embedded defaults, ``config/loop.env``'s
settings, ``simulate live`` playing the city at ``--speedup`` with its analyst) in a scratch
``VAR_DIR`` on a free port. ``--drift`` (default ``account_takeover``) is off until
``--drift-at`` minutes, then on at ``--drift-rate`` incidents a simulated day. Every 30 s it
prints what the app has done (scores, flags, reviews decided, labels, firings, trainings,
models); at the end, each trigger firing with what it started and when, measured from the
firing: the training started (the worker took it), the candidate registered, and gated (the
run finished: the gates ran after the registration). ``--read`` prints that report for a demo
that ran or runs (its ``VAR_DIR``, by default the project's ``var/``) and starts nothing.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from devservices.base import free_port

ROOT = Path(__file__).resolve().parent.parent


def _django(var_dir: Path) -> None:
    os.environ["VAR_DIR"] = str(var_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DJANGO_DEBUG", "true")
    import django

    django.setup()


def _counts() -> dict[str, int]:
    from fraud.models import FraudScore, ReviewItem
    from ml.models import Label, ModelVersion, TrainingRun, TriggerFiring

    return {
        "scored": FraudScore.objects.filter(checkpoint="authorization").count(),
        "fares scored": FraudScore.objects.filter(checkpoint="capture").count(),
        "flagged": FraudScore.objects.exclude(decision="approve").count(),
        "reviews decided": ReviewItem.objects.filter(status="decided").count(),
        "labels": Label.objects.count(),
        "firings": TriggerFiring.objects.count(),
        "trainings": TrainingRun.objects.count(),
        "models": ModelVersion.objects.count(),
    }


def _seconds(later, earlier) -> float | None:
    return None if later is None or earlier is None else (later - earlier).total_seconds()


def report(out=sys.stdout) -> dict[str, list[float]]:
    """Print every firing with what it started and when; return the delays by step."""
    from ml.models import TriggerFiring

    firings = TriggerFiring.objects.select_related("run", "run__model").order_by("fired_at")
    delays: dict[str, list[float]] = {"started": [], "registered": [], "gated": []}
    print(
        f"{'fired':>8}  {'trigger':<12}{'kind':<10}{'started':>9}{'registered':>11}"
        f"{'gated':>8}  outcome",
        file=out,
    )
    for firing in firings:
        run = firing.run
        steps = {"started": None, "registered": None, "gated": None}
        outcome = "no training (one was running)" if run is None else run.status
        if run is not None and firing.started:
            steps["started"] = _seconds(run.started_at, firing.fired_at)
            if run.model is not None:
                steps["registered"] = _seconds(run.model.created_at, firing.fired_at)
                steps["gated"] = _seconds(run.finished_at, firing.fired_at)
                failed = [g["gate"] for g in run.model.gates if not g.get("passed")]
                outcome = f"{run.model.status}" + (f" by {', '.join(failed)}" if failed else "")
                if "promoted to champion" in run.note:
                    outcome += ", promoted to champion"
            for step, value in steps.items():
                if value is not None:
                    delays[step].append(value)
        elif run is not None:
            outcome = "joined a running training"

        def cell(value: float | None, width: int) -> str:
            return f"{value:>{width - 1}.0f}s" if value is not None else f"{'-':>{width}}"

        print(
            f"{firing.fired_at:%H:%M:%S}  {firing.trigger:<12}{firing.kind:<10}"
            f"{cell(steps['started'], 9)}{cell(steps['registered'], 11)}"
            f"{cell(steps['gated'], 8)}  {outcome}",
            file=out,
        )
        print(f"          {firing.reason}", file=out)
    for step, values in delays.items():
        if values:
            print(
                f"trigger -> {step}: p50 {statistics.median(values):.0f} s, "
                f"max {max(values):.0f} s over {len(values)} trainings",
                file=out,
            )
    return delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=24.0)
    parser.add_argument("--drift", default="account_takeover")
    parser.add_argument("--drift-at", type=float, default=12.0, help="minutes after the start")
    parser.add_argument("--drift-rate", type=float, default=60.0, help="incidents a day")
    parser.add_argument("--speedup", type=float, default=60.0)
    parser.add_argument("--read", nargs="?", const=str(ROOT / "var"), default=None)
    args = parser.parse_args()

    if args.read is not None:
        _django(Path(args.read))
        print(_counts())
        report()
        return

    var_dir = Path(tempfile.mkdtemp(prefix="loop-turn-"))
    port = free_port()
    live = (
        f"--duration {args.minutes * 60:.0f} --speedup {args.speedup} "
        f"--base-url http://127.0.0.1:{port} --drift {args.drift}@+{args.drift_at}m "
        f"--scenario {args.drift}={args.drift_rate}"
    )
    env = {**os.environ, "VAR_DIR": str(var_dir), "WEB_PORT": str(port), "LIVE_ARGS": live}
    log = var_dir / "demo.log"
    print(f"make demo-loop in {var_dir} on port {port}; its output in {log}", flush=True)
    with log.open("w") as sink:
        demo = subprocess.Popen(
            ["make", "--no-print-directory", "demo-loop"],
            cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    _django(var_dir)
    began = time.monotonic()
    # The setup (migrate, bootstrap: about a minute) comes before the live run's minutes, and
    # a training the last firing started gets two minutes to finish.
    deadline = began + 120 + args.minutes * 60 + 120
    try:
        while time.monotonic() < deadline and demo.poll() is None:
            time.sleep(30)
            try:
                counts = _counts()
            except Exception as exc:  # the database is not migrated yet
                counts = {"setting up": type(exc).__name__}
            minute = (time.monotonic() - began) / 60
            print(f"{minute:5.1f} min  " + ", ".join(f"{k} {v}" for k, v in counts.items()))
            sys.stdout.flush()
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGINT)
            try:
                demo.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(demo.pid, signal.SIGKILL)
    print(f"demo exited with {demo.returncode}")
    report()


if __name__ == "__main__":
    main()
