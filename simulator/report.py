"""What a run did (counters) and how it is shown: a rich progress display on a terminal, plain
lines otherwise, and the end-of-run summary."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from simulator.engine import PAYMENT_TOPICS, Emitted

MAX_ERROR_SAMPLES = 20


@dataclass
class Stats:
    """Counters of one run. Error rate: errors / (events attempted + input rows rejected)."""

    mode: str
    requested_rate: float | None = None
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    events: Counter = field(default_factory=Counter)
    fraud_events: Counter = field(default_factory=Counter)
    fraud_payments: Counter = field(default_factory=Counter)
    chargebacks: Counter = field(default_factory=Counter)
    attempted: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    max_lag_s: float = 0.0
    lag_s: float = 0.0
    pending_labels: int = 0
    stopped: bool = False

    def record(self, emitted: Emitted) -> None:
        """Count one event published (or written)."""
        self.attempted += 1
        topic = type(emitted.event).topic
        self.events[type(emitted.event).__name__] += 1
        truth = emitted.truth
        if topic == "labels.chargeback_filed.v1":
            self.chargebacks["fraud" if truth and truth.is_fraud else "false"] += 1
        elif truth is not None and truth.is_fraud:
            self.fraud_events[truth.scenario] += 1
            if topic in PAYMENT_TOPICS:
                self.fraud_payments[truth.scenario] += 1

    def count(self, what: str, truth=None) -> None:
        """Count one action of the end-to-end mode (``trip_completed``, ...)."""
        self.attempted += 1
        self.events[what] += 1
        if truth is not None and truth.is_fraud:
            self.fraud_events[truth.scenario] += 1

    def error(self, message: str) -> None:
        self.errors += 1
        self.attempted += 1
        if len(self.error_samples) < MAX_ERROR_SAMPLES:
            self.error_samples.append(message)

    def lag(self, seconds: float) -> None:
        self.lag_s = seconds
        self.max_lag_s = max(self.max_lag_s, seconds)

    def finish(self) -> None:
        self.finished = time.monotonic()

    @property
    def published(self) -> int:
        return sum(self.events.values())

    @property
    def elapsed_s(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def achieved_rate(self) -> float:
        elapsed = self.elapsed_s
        return self.published / elapsed if elapsed > 0 else 0.0

    @property
    def error_rate(self) -> float:
        return self.errors / self.attempted if self.attempted else 0.0

    def to_json(self) -> dict:
        return {
            "published": self.published,
            "events": dict(self.events),
            "fraud_events": dict(self.fraud_events),
            "fraud_payments": dict(self.fraud_payments),
            "chargebacks": dict(self.chargebacks),
            "pending_labels": self.pending_labels,
            "errors": self.errors,
            "error_rate": round(self.error_rate, 6),
            "error_samples": list(self.error_samples),
            "requested_rate": self.requested_rate,
            "achieved_rate": round(self.achieved_rate, 1),
            "elapsed_s": round(self.elapsed_s, 3),
            "max_lag_s": round(self.max_lag_s, 3),
            "stopped": self.stopped,
        }


class Display:
    """Progress of a run: rich on a terminal, a plain line every ``interval`` seconds otherwise.

    ``total`` and ``completed`` are in whatever unit the mode counts (events, simulated hours,
    input rows); ``unit`` names it.
    """

    def __init__(
        self,
        stats: Stats,
        *,
        stream: TextIO,
        tty: bool,
        total: float | None,
        unit: str,
        interval: float = 5.0,
    ):
        self.stats = stats
        self.stream = stream
        self.tty = tty
        self.total = total
        self.unit = unit
        self.interval = interval
        self._last = 0.0
        self._progress: Progress | None = None
        self._task = None

    def __enter__(self) -> Display:
        if self.tty:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TextColumn("errors {task.fields[errors]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(file=self.stream),
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(
                f"{self.stats.mode} ({self.unit})",
                total=self.total,
                rate="",
                errors=0,
            )
        return self

    def update(self, completed: float, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < (0.2 if self.tty else self.interval):
            return
        self._last = now
        stats = self.stats
        rate = f"{stats.achieved_rate:,.0f} events/s"
        if stats.requested_rate:
            rate += f" of {stats.requested_rate:,.0f}, lag {stats.lag_s:.2f} s"
        if self._progress is not None:
            self._progress.update(self._task, completed=completed, rate=rate, errors=stats.errors)
            return
        share = f"/{self.total:,.0f}" if self.total else ""
        eta = ""
        if self.total and completed and stats.elapsed_s > 0:
            remaining = (self.total - completed) * stats.elapsed_s / completed
            eta = f" eta {remaining:,.0f} s"
        self.stream.write(
            f"{stats.mode}: {completed:,.0f}{share} {self.unit}, {stats.published:,} events, "
            f"{rate}, errors {stats.errors}{eta}\n"
        )
        self.stream.flush()

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()


def summary_lines(stats: Stats) -> list[str]:
    """Return the end-of-run summary as plain lines."""
    lines = [f"{stats.mode} finished{' (stopped)' if stats.stopped else ''}"]
    lines.append(f"events published: {stats.published:,} in {stats.elapsed_s:,.1f} s")
    for name, count in sorted(stats.events.items()):
        lines.append(f"  {name:<20} {count:>10,}")
    lines.append("fraud by scenario (events / payments):")
    for name in sorted(stats.fraud_events):
        lines.append(
            f"  {name:<20} {stats.fraud_events[name]:>10,} / {stats.fraud_payments[name]:,}"
        )
    if not stats.fraud_events:
        lines.append("  none")
    lines.append(
        f"chargebacks: {stats.chargebacks['fraud']:,} on fraud, {stats.chargebacks['false']:,} "
        f"false; {stats.pending_labels:,} still to come after the run"
    )
    rate = f"rate: achieved {stats.achieved_rate:,.1f} events/s"
    if stats.requested_rate:
        rate += f" of {stats.requested_rate:,.1f} requested, max lag {stats.max_lag_s:.3f} s"
    lines.append(rate)
    lines.append(f"errors: {stats.errors:,} ({stats.error_rate:.2%})")
    lines.extend(f"  {sample}" for sample in stats.error_samples)
    return lines


def print_summary(stats: Stats, *, stream: TextIO, tty: bool) -> None:
    if not tty:
        stream.write("\n".join(summary_lines(stats)) + "\n")
        return
    console = Console(file=stream)
    table = Table(title=f"{stats.mode} summary{' (stopped)' if stats.stopped else ''}")
    table.add_column("what")
    table.add_column("value", justify="right")
    for name, count in sorted(stats.events.items()):
        table.add_row(name, f"{count:,}")
    table.add_row("[bold]events", f"[bold]{stats.published:,}")
    for name in sorted(stats.fraud_events):
        table.add_row(
            f"fraud: {name}",
            f"{stats.fraud_events[name]:,} events / {stats.fraud_payments[name]:,} payments",
        )
    table.add_row(
        "chargebacks (fraud / false)",
        f"{stats.chargebacks['fraud']:,} / {stats.chargebacks['false']:,}",
    )
    table.add_row("labels still to come", f"{stats.pending_labels:,}")
    if stats.requested_rate:
        table.add_row("requested rate", f"{stats.requested_rate:,.1f} events/s")
        table.add_row("max lag", f"{stats.max_lag_s:.3f} s")
    table.add_row("achieved rate", f"{stats.achieved_rate:,.1f} events/s")
    table.add_row("elapsed", f"{stats.elapsed_s:,.1f} s")
    table.add_row("errors", f"{stats.errors:,} ({stats.error_rate:.2%})")
    console.print(table)
    for sample in stats.error_samples:
        console.print(f"  [red]{sample}")
