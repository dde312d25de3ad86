"""Writes of the learning loop's triggers: measure, decide (``ml.triggers``), start a training,
record each firing."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings

from fraud.selectors import scored_event_time_latest
from ml.metrics import drift_measured
from ml.models import TriggerConfig, TriggerFiring
from ml.selectors import (
    champion_get,
    chargeback_recall,
    drift_of,
    fine_tune_cut_latest,
    labels_known_count,
    logs_cut,
    review_precision,
    training_cut_latest,
    triggers_last_started,
)
from ml.services.training import training_request
from ml.triggers import Observed, TriggerSettings, firings

# The thresholds a person may set from the console, with their bounds.
EDITABLE = {
    "every_hours": ("a full retrain every (hours)", float, 0.01, None),
    "labels": ("a fine-tune every (new labels)", int, 1, None),
    "window_hours": ("performance and drift window (hours)", float, 0.01, None),
    "min_precision": ("review precision floor", float, 0.0, 1.0),
    "min_recall": ("chargeback recall floor", float, 0.0, 1.0),
    "min_sample": ("labels needed to judge performance", int, 1, None),
    "max_psi": ("drift threshold (PSI)", float, 0.001, None),
    "cooldown_hours": ("a trigger that started waits (hours)", float, 0.0, None),
}


class TriggerSettingsInvalid(ValueError):
    """Thresholds refused; ``errors`` says why, per field."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def trigger_values() -> tuple[dict[str, float], TriggerConfig | None]:
    """Return the thresholds in force by field (``EDITABLE``) and the console's row that set
    them, ``None`` when they are the settings' (``ML_TRIGGER_*``)."""
    row = TriggerConfig.objects.order_by("-id").first()
    if row is not None:
        return {name: getattr(row, name) for name in EDITABLE}, row
    return {
        "every_hours": settings.ML_TRIGGER_EVERY_HOURS,
        "labels": settings.ML_TRIGGER_LABELS,
        "window_hours": settings.ML_TRIGGER_WINDOW_HOURS,
        "min_precision": settings.ML_TRIGGER_MIN_PRECISION,
        "min_recall": settings.ML_TRIGGER_MIN_RECALL,
        "min_sample": settings.ML_TRIGGER_MIN_SAMPLE,
        "max_psi": settings.ML_TRIGGER_MAX_PSI,
        "cooldown_hours": settings.ML_TRIGGER_COOLDOWN_HOURS,
    }, None


def trigger_settings_set(*, values: dict[str, str], by: str) -> TriggerConfig:
    """Set the triggers' thresholds from ``values`` (text, as a form sends them; every field
    of ``EDITABLE``) for the next check; return the row kept. Raise
    ``TriggerSettingsInvalid`` naming each refused field, writing nothing."""
    parsed, errors = {}, {}
    for name, (label, kind, low, high) in EDITABLE.items():
        text = str(values.get(name, "")).strip()
        try:
            value = kind(text)
        except ValueError:
            errors[name] = f"{label}: a {'whole ' if kind is int else ''}number, please"
            continue
        if value < low or (high is not None and value > high):
            bounds = f"at least {low:g}" + (f" and at most {high:g}" if high is not None else "")
            errors[name] = f"{label}: {bounds}"
            continue
        parsed[name] = value
    if errors:
        raise TriggerSettingsInvalid(errors)
    return TriggerConfig.objects.create(**parsed, changed_by=by)


def trigger_settings() -> TriggerSettings:
    """Return the triggers' settings: the console's thresholds when set (``TriggerConfig``),
    else ``ML_TRIGGER_*``."""
    values, _ = trigger_values()
    return TriggerSettings(
        every=timedelta(hours=values["every_hours"]),
        labels=int(values["labels"]),
        window=timedelta(hours=values["window_hours"]),
        min_precision=values["min_precision"],
        min_recall=values["min_recall"],
        min_sample=int(values["min_sample"]),
        max_psi=values["max_psi"],
        min_drift_sample=settings.ML_DRIFT_MIN_SAMPLE,
        cooldown=timedelta(hours=values["cooldown_hours"]),
    )


def observed_at(now: datetime, rules: TriggerSettings) -> Observed:
    """Return what the triggers read at event time ``now`` (``ml.triggers.Observed``)."""
    since = now - rules.window
    cut = training_cut_latest()
    precision, reviews = review_precision(since=since, until=now)
    recall, chargebacks = chargeback_recall(since=since, until=now)
    champion = champion_get()
    fine_tuned = [c for c in (fine_tune_cut_latest(), logs_cut(champion)) if c is not None]
    psi, sample = (
        drift_of(champion, since=since, limit=settings.ML_DRIFT_SAMPLE)
        if champion is not None
        else ({}, 0)
    )
    drift_measured(psi)
    return Observed(
        now=now,
        last_cut=cut,
        new_labels=labels_known_count(since=cut, until=now),
        fine_tune_labels=labels_known_count(
            since=max(fine_tuned) if fine_tuned else None, until=now
        ),
        review_precision=precision,
        reviews=reviews,
        chargeback_recall=recall,
        chargebacks=chargebacks,
        psi=psi,
        drift_sample=sample,
        last_started=triggers_last_started(),
    )


def triggers_check(*, now: datetime | None = None) -> list[TriggerFiring]:
    """Evaluate the triggers at event time ``now`` (default: the newest payment scored) and
    return the firings recorded. The first firing asks for its training
    (``training_request``: queued on the ``training`` queue once committed); it and the later
    ones of this check name the run that trains, ``started`` only where they started it (not
    when a training was already running). Nothing fires before a payment was scored."""
    now = now or scored_event_time_latest()
    if now is None:
        return []
    rules = trigger_settings()
    recorded: list[TriggerFiring] = []
    run = None
    for firing in firings(observed_at(now, rules), rules):
        started = False
        if run is None:
            run, started = training_request(kind=firing.kind, reason=firing.trigger, as_of=now)
        recorded.append(
            TriggerFiring.objects.create(
                trigger=firing.trigger,
                event_time=now,
                figures=firing.figures,
                reason=firing.reason,
                kind=firing.kind,
                run=run,
                started=started,
            )
        )
    return recorded
