"""Scoring maths: served vectors to model inputs, scores, decisions and reasons for a batch.

The champion decides for every card except the canaries' share (by ``card_bucket``); shadows
score every row and decide nothing. Explanations (``pred_contrib``, far costlier than a
prediction: docs/performance.md) are computed for the rows the deciding model flags (review or
decline), or for every row when asked.

Pure Python: no Django, no I/O.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import lightgbm as lgb
import numpy as np
from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

from events.contracts import CheckpointPayment
from features.definitions import FEATURE_SERVICES
from features.ondemand import INPUTS as ON_DEMAND_INPUTS
from features.ondemand import on_demand
from features.serving import ServedVector
from features.stream_serving import STALE
from features.training import service_features
from fraud.decisions import APPROVE, Thresholds, canary_for, card_bucket, decide
from fraud.explain import reasons

# Status of every stored feature of a vector the store did not serve (read failed or timed
# out): Feast's "invalid", so the feature log tells it from an entity the store does not hold.
UNSERVED = "INVALID"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """A deployment with its verified booster."""

    model_version: str
    role: str
    booster: lgb.Booster
    feature_names: tuple[str, ...]
    feature_service: str
    review_threshold: float
    decline_threshold: float
    canary_share: float = 0.0


@dataclass(frozen=True)
class ModelSet:
    """The models the scorer runs, and the deployments it refused (version -> why)."""

    champion: LoadedModel | None
    canaries: tuple[LoadedModel, ...] = ()
    shadows: tuple[LoadedModel, ...] = ()
    refused: Mapping[str, str] = field(default_factory=dict)

    def deciding(self, card_id: str) -> LoadedModel:
        """Return the model deciding for ``card_id``: a canary for its share, else the
        champion."""
        assert self.champion is not None
        version = canary_for(
            card_bucket(card_id), [(c.model_version, c.canary_share) for c in self.canaries]
        )
        if version is None:
            return self.champion
        return next(c for c in self.canaries if c.model_version == version)


class ModelFailed(Exception):
    """A model gave a score that is not a probability (NaN, an infinity)."""


@dataclass
class Scored:
    """One payment's outcome: the deciding model's score and decision, with reasons."""

    score: float
    decision: str
    model_version: str
    role: str
    reasons: list[dict[str, Any]]
    degraded_features: list[str]
    # (model_version, score, decision, model_us) of every shadow
    shadows: list[tuple[str, float, str, float]]
    # The list entries and rules that matched (``fraud.policy``); the decision is theirs when
    # one acted.
    matched: list[dict[str, Any]] = field(default_factory=list)
    # The canary that should have decided but failed (raised, or scored no probability): the
    # champion decided instead. Counted against the canary's error rate (``ml.canary``).
    failed_model: str = ""
    # The deciding model's prediction time for this payment, µs: its batch's predict call over
    # the batch's rows it scored (the shadow report and the canary's latency compare models
    # on it; the payment's own latency holds everything else too).
    model_us: float = 0.0


def feature_matrix(vectors: Sequence[ServedVector], names: Sequence[str]) -> np.ndarray:
    """Return the model input: one row per vector, ``names`` columns in order, ``None`` as NaN
    (LightGBM's missing value)."""
    matrix = np.empty((len(vectors), len(names)), dtype=np.float64)
    for i, vector in enumerate(vectors):
        values = vector.features
        matrix[i] = [math.nan if (v := values.get(n)) is None else v for n in names]
    return matrix


def unserved_vector(request: Mapping[str, Any], service: str) -> ServedVector:
    """Return the vector of ``request`` when the store served nothing: every stored feature
    missing (status ``UNSERVED``), on-demand features computed from the request alone."""
    declared = FEATURE_SERVICES[service]
    names = [name for name, _ in service_features(declared)]
    values = dict.fromkeys(names)
    return ServedVector(
        values=values,
        statuses=dict.fromkeys(names, UNSERVED),
        event_timestamps=dict.fromkeys(names),
        on_demand=on_demand(request, values, declared.on_demand),
        # Nothing served is what the training join gives: never exact.
        consistency=STALE,
    )


def degraded_features(vector: ServedVector, names: Sequence[str]) -> list[str]:
    """Return the model's input features ``vector`` did not serve as served because the store
    did not answer: stored features with status ``UNSERVED``, and on-demand ones reading any of
    them (``features.ondemand.INPUTS``), whatever value they took (``is_new_card`` is 1 for a
    card whose ``card_added_at`` was not read) or missing as a result."""
    statuses = vector.statuses
    if UNSERVED not in statuses.values():  # the common case, scanned in C
        return []
    unserved = {name for name, status in statuses.items() if status == UNSERVED}
    features = vector.features
    return [
        n
        for n in names
        if n in unserved
        or (n in ON_DEMAND_INPUTS and not unserved.isdisjoint(ON_DEMAND_INPUTS[n]))
        or features.get(n) is None
    ]


def _outcomes(
    model: LoadedModel,
    matrix: np.ndarray,
    rows: Sequence[int],
    *,
    requests: Sequence[Mapping[str, Any]],
    vectors: Sequence[ServedVector],
    degraded_review_cents: int,
    threads: int,
) -> list[tuple[float, str, list[str]]]:
    """Return (score, decision, degraded features) of ``model`` for each of ``rows``."""
    thresholds = Thresholds(model.review_threshold, model.decline_threshold, degraded_review_cents)
    predicted = model.booster.predict(matrix[list(rows)], num_threads=threads)
    if not np.isfinite(predicted).all():
        raise ModelFailed(f"{model.model_version} gave a score that is not a probability")
    out = []
    for row, raw in zip(rows, predicted, strict=True):
        # A probability objective is checked at load; the clip only guards rounding.
        score = min(max(float(raw), 0.0), 1.0)
        missing = degraded_features(vectors[row], model.feature_names)
        decision = decide(
            score=score,
            thresholds=thresholds,
            degraded=bool(missing),
            amount_cents=int(requests[row]["amount_cents"]),
        )
        out.append((score, decision, missing))
    return out


def score_batch(
    models: ModelSet,
    *,
    requests: Sequence[Mapping[str, Any]],
    vectors: Sequence[ServedVector],
    degraded_review_cents: int,
    threads: int = 1,
    explain_all: bool = False,
) -> list[Scored]:
    """Score ``requests`` (payment payloads: ``card_id``, ``amount_cents``) with their served
    ``vectors``, in order. ``threads`` is LightGBM's ``num_threads`` for every prediction."""
    if models.champion is None:
        raise ValueError("no champion: nothing can decide")
    if not requests:
        return []
    matrices: dict[tuple[str, ...], np.ndarray] = {}

    def matrix(model: LoadedModel) -> np.ndarray:
        if model.feature_names not in matrices:
            matrices[model.feature_names] = feature_matrix(vectors, model.feature_names)
        return matrices[model.feature_names]

    common = {
        "requests": requests,
        "vectors": vectors,
        "degraded_review_cents": degraded_review_cents,
        "threads": threads,
    }
    deciders = [models.deciding(str(r["card_id"])) for r in requests]
    results: list[Scored] = [None] * len(requests)  # type: ignore[list-item]
    for model in {d.model_version: d for d in deciders}.values():
        rows = [i for i, d in enumerate(deciders) if d is model]
        if model is models.champion:
            _decide(model, rows, results, matrix(model), common, explain_all)
            continue
        try:
            _decide(model, rows, results, matrix(model), common, explain_all)
        except Exception:
            # A canary must not take the payments down with it: the champion decides its
            # cards, and each is counted against the canary (its guardrail rolls it back).
            log.exception("canary %s failed to score %d payments", model.model_version, len(rows))
            _decide(models.champion, rows, results, matrix(models.champion), common, explain_all)
            for row in rows:
                results[row].failed_model = model.model_version
    everyone = range(len(requests))
    for shadow in models.shadows:
        began = time.perf_counter()
        try:
            outcomes = _outcomes(shadow, matrix(shadow), everyone, **common)
        except Exception:
            log.exception(
                "shadow %s failed to score %d payments", shadow.model_version, len(everyone)
            )
            continue  # a shadow decides nothing: this batch has no score of it
        model_us = (time.perf_counter() - began) * 1e6 / len(everyone)
        for row, (score, decision, _) in zip(everyone, outcomes, strict=True):
            results[row].shadows.append((shadow.model_version, score, decision, model_us))
    return results


def _decide(
    model: LoadedModel,
    rows: Sequence[int],
    results: list[Scored],
    matrix: np.ndarray,
    common: Mapping[str, Any],
    explain_all: bool,
) -> None:
    """Set ``results[row]`` for each of ``rows``: ``model``'s score, decision and (for a
    payment it flags, or every one with ``explain_all``) its reasons. Write nothing when it
    fails (raises ``ModelFailed`` when a score is not a probability)."""
    began = time.perf_counter()
    outcomes = _outcomes(model, matrix, rows, **common)
    model_us = (time.perf_counter() - began) * 1e6 / len(rows)
    explain = [
        row
        for row, (_, decision, _) in zip(rows, outcomes, strict=True)
        if explain_all or decision != APPROVE
    ]
    contributions = (
        model.booster.predict(matrix[explain], num_threads=common["threads"], pred_contrib=True)
        if explain
        else []
    )
    for row, (score, decision, missing) in zip(rows, outcomes, strict=True):
        results[row] = Scored(
            score=score,
            decision=decision,
            model_version=model.model_version,
            role=model.role,
            reasons=[],
            degraded_features=missing,
            shadows=[],
            model_us=model_us,
        )
    for row, contribution in zip(explain, contributions, strict=True):
        results[row].reasons = reasons(
            contributions=contribution,
            feature_names=model.feature_names,
            values=common["vectors"][row].features,
        )


# What a scoring request keeps of a payment event: the entity keys the service reads, what
# the on-demand features compute from, and the payment id the feature log carries (and its
# ``context``: ``payment_request``).
REQUEST_FIELDS = (
    "payment_id",
    "card_id",
    "rider_id",
    "driver_id",
    "pickup_zone",
    "amount_cents",
    "distance_km",
    "occurred_at",
)
_STATUS_NUMBERS: dict[str, int] = dict(FieldStatus.items())
_STATUS_NAMES = {number: name for name, number in _STATUS_NUMBERS.items()}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def payment_request(event: CheckpointPayment) -> dict[str, Any]:
    """Return the scoring request of ``event``: its ``REQUEST_FIELDS``, JSON-ready
    (``occurred_at`` in ISO 8601). A payment authorized names no driver (``driver_id`` None);
    a capture request names its trip's."""
    request = {name: getattr(event, name, None) for name in REQUEST_FIELDS}
    request["occurred_at"] = event.occurred_at.isoformat()
    # Where the rider booked from: the device and address views' keys (``context.device_id``,
    # ``context.ip``).
    request["context"] = {"device_id": event.context.device_id, "ip": event.context.ip}
    return request


@cache
def record_names(service: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Return the stored and the on-demand feature names of ``service``, in the order of the
    lists of its ``vector_record``."""
    declared = FEATURE_SERVICES[service]
    return tuple(name for name, _ in service_features(declared)), declared.on_demand


def vector_record(
    vector: ServedVector,
    *,
    service: str,
    request: Mapping[str, Any],
    request_time: datetime | str,
) -> dict[str, Any]:
    """Return ``vector`` (of ``service``) as compact JSON-ready data, with the request and when
    it was read: the form kept on ``FraudScore.features``, so the vector can be logged again
    as served. Lists in the service's feature order: values, status numbers (Feast's
    ``FieldStatus``), event times (µs since the epoch), then the on-demand values. Not named
    maps: they make a row several times larger, and the database's bulk insert slower with it
    (docs/performance.md). ``request_time`` may be given as its ISO 8601 text (a batch's
    vectors share it: converted once)."""
    stored, on_demand = record_names(service)
    stamps = vector.event_timestamps
    # The features of a view share their event time: each time is converted once.
    micros: dict[datetime | None, int | None] = {None: None}
    for stamp in stamps.values():
        if stamp not in micros:
            micros[stamp] = _micros(stamp)
    values, statuses, numbers = vector.values, vector.statuses, _STATUS_NUMBERS
    return {
        "service": service,
        "request": dict(request),
        "request_time": request_time if isinstance(request_time, str) else request_time.isoformat(),
        "values": [_finite(values[n]) for n in stored],
        "statuses": [numbers[statuses[n]] for n in stored],
        "event_timestamps": [micros[stamps[n]] for n in stored],
        "on_demand": [_finite(vector.on_demand[n]) for n in on_demand],
        "consistency": vector.consistency,
        "consistency_lag_ms": vector.lag_ms,
    }


def _finite(value: Any) -> Any:
    # PostgreSQL's jsonb has no NaN or infinity; the model reads a missing value the same way.
    # (``value - value`` is 0.0 for a finite float and NaN for NaN and the infinities.)
    return None if isinstance(value, float) and value - value != 0.0 else value


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def vector_from_record(record: Mapping[str, Any]) -> tuple[ServedVector, datetime]:
    """Return the served vector and request time kept by ``vector_record``."""
    stored, on_demand = record_names(record["service"])
    vector = ServedVector(
        values=dict(zip(stored, record["values"], strict=True)),
        statuses={
            n: _STATUS_NAMES[number] for n, number in zip(stored, record["statuses"], strict=True)
        },
        event_timestamps={
            n: None if us is None else _EPOCH + timedelta(microseconds=us)
            for n, us in zip(stored, record["event_timestamps"], strict=True)
        },
        on_demand=dict(zip(on_demand, record["on_demand"], strict=True)),
        consistency=record.get("consistency"),
        lag_ms=record.get("consistency_lag_ms"),
    )
    return vector, datetime.fromisoformat(record["request_time"])
