"""When to train: four triggers evaluated in event time (pure: no Django).

The clock is the stream's: ``now`` is the event time of the newest payment scored, so a
replayed or accelerated stream fires them as a live one would. Each trigger looks at figures the
caller measured (``Observed``) and, when it fires, says which training it asks for:

- **performance** (fine-tune): the precision of the analysts' decisions on reviewed payments, or
  the recall of the champion on payments a chargeback proved fraud, over the last ``window``
  (by when the label became known), below its floor with at least ``min_sample`` labels;
- **drift** (full retrain): the population stability index of the score, or of any model input,
  over the last ``window`` of served payments against the champion's training reference, above
  ``max_psi``, over at least ``min_drift_sample`` payments (the index of a few hundred draws
  from an unchanged distribution crosses 0.2 by chance);
- **time** (full retrain): ``every`` since the last training's cut, once ``min_sample`` labels
  arrived since it (with nothing new to learn from, a retrain would only repeat the last one;
  at a demo's start, the bootstrap champion's history is months old and the stream empty);
- **volume** (fine-tune): ``labels`` labels known since the last fine-tune's cut or the
  champion's, whichever is later (``fine_tune_labels``): what the serving model has not
  learned from. Not since the last training of any kind: in the demo's loop the drift trigger
  asked for a full retrain every few minutes, each rejected (a few hundred rows against the
  bootstrap champion), and each reset the count, so no fine-tune ever ran.

A trigger that started a training does not fire again for ``cooldown`` (a performance or drift
trigger would otherwise fire at every check until a new model is deployed). At most one
training runs at a time: the caller starts the first firing's and records the others as
starting nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

PERFORMANCE, DRIFT, TIME, VOLUME = "performance", "drift", "time", "volume"
FULL, FINE_TUNE = "full", "fine_tune"
# The order they are considered in: what hurts now first.
TRIGGERS = (PERFORMANCE, DRIFT, TIME, VOLUME)


@dataclass(frozen=True)
class TriggerSettings:
    every: timedelta = timedelta(hours=24)
    labels: int = 1000
    window: timedelta = timedelta(hours=24)
    min_precision: float = 0.1
    min_recall: float = 0.5
    min_sample: int = 30
    max_psi: float = 0.2
    min_drift_sample: int = 500
    cooldown: timedelta = timedelta(hours=6)


@dataclass(frozen=True)
class Observed:
    """What the caller measured at event time ``now``: ``last_cut`` (the latest training's
    cut, else the champion's data end; None: nothing yet), labels known since it, the window's
    review precision and chargeback recall with their sample sizes, the PSI of the score and of
    each input (``psi``) over ``drift_sample`` payments, and when each trigger last started a
    training."""

    now: datetime
    last_cut: datetime | None
    new_labels: int = 0
    # Labels known since the last fine-tune's cut or the champion's (None: ``new_labels``).
    fine_tune_labels: int | None = None
    review_precision: float | None = None
    reviews: int = 0
    chargeback_recall: float | None = None
    chargebacks: int = 0
    psi: Mapping[str, float] = field(default_factory=dict)
    drift_sample: int = 0
    last_started: Mapping[str, datetime] = field(default_factory=dict)


@dataclass(frozen=True)
class Firing:
    trigger: str
    kind: str
    figures: dict[str, Any]
    reason: str


def firings(observed: Observed, settings: TriggerSettings) -> list[Firing]:
    """Return the triggers that fire at ``observed.now``, in ``TRIGGERS`` order."""
    fired: list[Firing] = []
    for trigger in TRIGGERS:
        last = observed.last_started.get(trigger)
        if last is not None and observed.now - last < settings.cooldown:
            continue
        firing = _CHECKS[trigger](observed, settings)
        if firing is not None:
            fired.append(firing)
    return fired


def _performance(o: Observed, s: TriggerSettings) -> Firing | None:
    figures = {
        "review_precision": o.review_precision,
        "reviews": o.reviews,
        "chargeback_recall": o.chargeback_recall,
        "chargebacks": o.chargebacks,
        "min_precision": s.min_precision,
        "min_recall": s.min_recall,
        "min_sample": s.min_sample,
    }
    low = []
    precision, recall = o.review_precision, o.chargeback_recall
    if o.reviews >= s.min_sample and precision is not None and precision < s.min_precision:
        low.append(
            f"review precision {precision:.2f} < {s.min_precision:.2f} over {o.reviews} decisions"
        )
    if o.chargebacks >= s.min_sample and recall is not None and recall < s.min_recall:
        low.append(
            f"recall {recall:.2f} < {s.min_recall:.2f} over {o.chargebacks} fraud chargebacks"
        )
    if not low:
        return None
    return Firing(PERFORMANCE, FINE_TUNE, figures, "; ".join(low))


def _drift(o: Observed, s: TriggerSettings) -> Firing | None:
    if o.drift_sample < s.min_drift_sample:
        return None
    over = {name: value for name, value in o.psi.items() if value > s.max_psi}
    if not over:
        return None
    worst = max(over, key=over.__getitem__)
    return Firing(
        DRIFT,
        FULL,
        {"psi": dict(o.psi), "max_psi": s.max_psi, "payments": o.drift_sample},
        f"PSI of {worst} {over[worst]:.2f} > {s.max_psi:.2f}"
        + (f" (and {len(over) - 1} more)" if len(over) > 1 else ""),
    )


def _time(o: Observed, s: TriggerSettings) -> Firing | None:
    if o.last_cut is None or o.now - o.last_cut < s.every or o.new_labels < s.min_sample:
        return None
    return Firing(
        TIME,
        FULL,
        {
            "since_last_cut_s": (o.now - o.last_cut).total_seconds(),
            "every_s": s.every.total_seconds(),
            "new_labels": o.new_labels,
        },
        f"{o.now - o.last_cut} since the last training's data",
    )


def _volume(o: Observed, s: TriggerSettings) -> Firing | None:
    new = o.new_labels if o.fine_tune_labels is None else o.fine_tune_labels
    if new < s.labels:
        return None
    return Firing(
        VOLUME,
        FINE_TUNE,
        {"new_labels": new, "labels": s.labels},
        f"{new} labels the champion has not learned from",
    )


_CHECKS = {PERFORMANCE: _performance, DRIFT: _drift, TIME: _time, VOLUME: _volume}
