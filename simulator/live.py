"""Live mode: the simulated city played against the running app in (sped-up) real time, with an
analyst who decides reviews, so the whole loop turns within minutes of ``make demo``.

Pacing. The simulated clock starts at ``start`` (by default 07:00 today, when the city wakes
up) as the wall clock reads ``wall_start`` (now), and runs ``speedup`` times faster: an event of
simulated time ``t`` is published when the wall clock reaches
``wall_start + (t - start) / speedup`` and carries that instant as its ``occurred_at``.
Everything the app sees is therefore in its own time (windows, review ages, label delays,
triggers), and the world is ``speedup`` times as busy: at 60, an hour of the city a minute.
That busier world is not the one the bootstrap champion learnt (its windows hold 60 times the
activity), which the drift trigger sees; it is what the loop is for.

The analyst. A review of one of the simulator's own payments is decided through the fraud
desk's API (``/fraud/api/``, logged in as an analyst) after a think time, by the ground truth
the simulator recorded, wrong with probability ``1 - accuracy``: fraud is ``confirmed_fraud``,
legitimate ``approved``. Reviews of payments it did not make (a person's booking in the demo)
are left to people.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from events.bus import Bus
from simulator.endtoend import ApiError, Http
from simulator.engine import Emitted
from simulator.load import MAX_BATCH, publish_batch
from simulator.report import Stats

FRAUD, LEGITIMATE = "confirmed_fraud", "approved"


def live_publish(
    emitted: Iterator[Emitted],
    *,
    bus: Bus,
    start: datetime,
    wall_start: datetime,
    speedup: float,
    duration_s: float,
    stats: Stats,
    topic_prefix: str = "",
    on_truth: Callable[[list[dict]], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    on_tick: Callable[[datetime], None] | None = None,
    on_progress: Callable[[], None] | None = None,
    max_batch: int = MAX_BATCH,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Stats:
    """Publish the events of ``emitted`` (a simulation started at ``start``) paced by their
    simulated time divided by ``speedup`` from ``wall_start``, stamped with the instant each is
    due, for ``duration_s`` seconds of wall clock or until ``should_stop()``; ``on_tick(now)``
    runs between batches (the analyst's turn). Return ``stats``."""
    if speedup <= 0:
        raise ValueError("the speedup must be positive (1 = the city's own pace)")
    if duration_s <= 0:
        raise ValueError("a live run is bounded: give a positive duration")
    producer = bus.producer()
    began = stats.started = clock()
    pending: Emitted | None = None

    def wall(simulated: datetime) -> datetime:
        return wall_start + (simulated - start) / speedup

    try:
        while True:
            elapsed = clock() - began
            if elapsed >= duration_s or should_stop():
                stats.stopped = elapsed < duration_s
                break
            reached = start + timedelta(seconds=elapsed * speedup)
            batch: list[Emitted] = []
            while len(batch) < max_batch:
                item = pending if pending is not None else next(emitted)
                if item.event.occurred_at > reached:
                    pending = item
                    break
                pending = None
                batch.append(item)
            if batch:
                due = (batch[0].event.occurred_at - start).total_seconds() / speedup
                stats.lag(max(elapsed - due, 0.0))
                publish_batch(
                    producer,
                    batch,
                    stamps=[wall(item.event.occurred_at) for item in batch],
                    topic_prefix=topic_prefix,
                    stats=stats,
                    on_truth=on_truth,
                )
                if on_progress is not None:
                    on_progress()
            if on_tick is not None:
                on_tick(wall_start + timedelta(seconds=elapsed))
            if len(batch) < max_batch and pending is not None:
                ahead = (pending.event.occurred_at - start).total_seconds() / speedup - elapsed
                sleep(min(max(ahead, 0.0), 0.25))
    finally:
        producer.close()
        stats.finish()
    return stats


@dataclass
class Analyst:
    """Decides the open reviews of the simulator's payments through the fraud desk API.

    ``truth_of(payment_ids)`` answers ``{payment_id: is_fraud}`` for the payments the simulator
    made (others are absent and left alone). Each review seen is decided once its think time,
    drawn between ``think_s``, has passed; the queue is read every ``poll_s``.
    """

    http: Http
    username: str
    password: str
    truth_of: Callable[[list[str]], dict[str, bool]]
    stats: Stats
    seed: int = 1
    accuracy: float = 0.95
    think_s: tuple[float, float] = (30.0, 120.0)
    poll_s: float = 5.0
    rng: random.Random = field(init=False)
    _due: dict[int, tuple[float, str]] = field(default_factory=dict, init=False)
    _skipped: set[int] = field(default_factory=set, init=False)  # not ours, or done
    _polled: float = field(default=float("-inf"), init=False)
    _logged_in: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        if not 0 <= self.accuracy <= 1:
            raise ValueError("the analyst's accuracy is a probability (0..1)")
        self.rng = random.Random(f"analyst:{self.seed}")

    def tick(self, now: float) -> None:
        """Read the queue when due and decide what has waited its think time (``now``: a
        monotonic clock). A failed call is counted as an error and retried next turn."""
        try:
            if not self._logged_in:
                self.http.log_in(self.username, self.password)
                self._logged_in = True
            if now - self._polled >= self.poll_s:
                self._polled = now
                self._read_queue(now)
            for review_id, (at, outcome) in sorted(self._due.items()):
                if at <= now:
                    self._decide(review_id, outcome)
        except ApiError as exc:
            if exc.status in (401, 403):
                self._logged_in = False
            self.stats.error(f"analyst: {exc}")
        except OSError as exc:
            self.stats.error(f"analyst: {type(exc).__name__}: {exc}")

    def _read_queue(self, now: float) -> None:
        _, rows = self.http.session_json("GET", "/fraud/api/reviews?limit=500&unclaimed=true")
        new = [r for r in rows if r["id"] not in self._due and r["id"] not in self._skipped]
        truth = self.truth_of([r["payment_id"] for r in new]) if new else {}
        for row in new:
            is_fraud = truth.get(row["payment_id"])
            if is_fraud is None:
                self._skipped.add(row["id"])  # not ours: a person decides it
                continue
            right = self.rng.random() < self.accuracy
            outcome = FRAUD if is_fraud == right else LEGITIMATE
            self._due[row["id"]] = (now + self.rng.uniform(*self.think_s), outcome)

    def _decide(self, review_id: int, outcome: str) -> None:
        # A failed call raises before the review leaves ``_due``: it is tried again next turn.
        status, _ = self.http.session_json(
            "POST",
            f"/fraud/api/reviews/{review_id}/decide",
            payload={"outcome": outcome, "note": "simulated analyst"},
            expect=(200, 404, 409),
        )
        del self._due[review_id]
        self._skipped.add(review_id)  # decided (or someone else's): never read again
        if status == 200:
            self.stats.count(f"review_{outcome}")
        else:
            self.stats.count("review_taken_elsewhere")
