"""Writes of scores: each with its shadow scores and review item, the ``fraud.scored.v1``
events of scores, the feature log marks, rescoring degraded scores."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

import orjson
from django.db import connection, transaction
from django.utils import timezone

from events.bulk import copy_available, delete_ids, insert_rows
from events.bus import BusError, Producer
from events.contracts import CheckpointPayment, FraudScored, PolicyMatch, ScoreReason
from features.store import FeatureConfig
from fraud.explain import MAX_REASONS
from fraud.feature_log import LogItem, feature_log_items
from fraud.feature_reads import FeatureReader
from fraud.models import (
    AUTHORIZATION,
    Decision,
    FraudScore,
    ReviewItem,
    ShadowScore,
    UnloggedScore,
)
from fraud.scoring import ModelSet, Scored, score_batch
from fraud.selectors import scores_degraded


@dataclass(frozen=True)
class ScoreDraft:
    """A payment event scored at its checkpoint, ready to be recorded."""

    event: CheckpointPayment
    scored: Scored
    # ``fraud.scoring.vector_record`` of the vector served for it.
    features: dict[str, Any]
    scored_at: datetime
    latency_ms: float

    @cached_property
    def features_json(self) -> str:
        """``features`` as JSON: encoded once for the score's row and its feature log entry
        (by orjson, far faster than the json module: docs/performance.md)."""
        return orjson.dumps(self.features).decode()


@dataclass(frozen=True)
class Recorded:
    """What ``scores_record`` inserted: score id per payment event id, and the flagged ones."""

    score_ids: dict[uuid.UUID, int]
    flagged_ids: list[int]


def scored_event_id(payment_event_id: uuid.UUID) -> uuid.UUID:
    """Return the event id of the ``fraud.scored.v1`` event of a payment event: derived from it,
    so the verdict on one payment always has the same id."""
    return uuid.uuid5(payment_event_id, "fraud.scored.v1")


def scored_event(item: ScoreDraft | FraudScore) -> FraudScored:
    """Return the ``fraud.scored.v1`` event of a draft just recorded or of a recorded score
    (published again after a crash: the same event, same id; a degraded score rescored since
    carries its new score and reasons, its decision unchanged)."""
    if isinstance(item, ScoreDraft):
        payment, scored = item.event, item.scored
        ids = (payment.event_id, payment.payment_id, payment.card_id, payment.rider_id)
        degraded = bool(scored.degraded_features)
        consistency = item.features.get("consistency") or None
        checkpoint = payment.checkpoint
    else:
        scored = item
        ids = (item.event_id, item.payment_id, item.card_id, item.rider_id)
        degraded = item.degraded
        consistency = item.consistency or None
        checkpoint = item.checkpoint
    payment_event_id, payment_id, card_id, rider_id = ids
    return FraudScored(
        event_id=scored_event_id(payment_event_id),
        occurred_at=item.scored_at,
        payment_id=payment_id,
        payment_event_id=payment_event_id,
        card_id=card_id,
        rider_id=rider_id,
        score=scored.score,
        decision=scored.decision,
        model_version=scored.model_version,
        degraded=degraded,
        consistency=consistency,
        reasons=[
            ScoreReason(feature=r["feature"], text=r["text"]) for r in scored.reasons[:MAX_REASONS]
        ],
        matched=[PolicyMatch(**m) for m in scored.matched],
        checkpoint=checkpoint,
    )


def _review_item(score_id: int, event: CheckpointPayment) -> ReviewItem:
    """Return the review item of a score, with what the case page shows of where its payment
    came from."""
    context, pickup, dropoff = event.context, event.pickup, event.dropoff
    return ReviewItem(
        score_id=score_id,
        device_id=context.device_id,
        ip=context.ip,
        card_brand=event.card_brand or "",
        card_last4=event.card_last4 or "",
        rider_lat=context.lat,
        rider_lng=context.lng,
        pickup_lat=pickup.lat if pickup else None,
        pickup_lng=pickup.lng if pickup else None,
        dropoff_lat=dropoff.lat if dropoff else None,
        dropoff_lng=dropoff.lng if dropoff else None,
    )


def scores_record(*, drafts: Sequence[ScoreDraft]) -> Recorded:
    """Record the scores of ``drafts`` atomically; return what was inserted. On PostgreSQL a
    batch with no shadow score and no review is one statement (``events.bulk.insert_rows``);
    else the writes are one transaction.

    Idempotent on the payment event's ``event_id``: a payment already scored (a redelivery, or
    another scorer) keeps its score and nothing is written for it but missing shadow scores.
    For each score inserted: its shadow scores, a review item when the decision is ``review``
    and an ``UnloggedScore``. Neither the ``fraud.scored.v1`` events (``scored_event``) nor the
    served vectors go out here: the scorer sends both after the commit, and the
    ``UnloggedScore`` stays until both are done (``scores_mark_logged``).
    """
    if not drafts:
        return Recorded({}, [])
    batch_id = uuid.uuid4()
    # The columns of each score, as the fields prepare them, but for the served vector (given
    # as its text): on PostgreSQL a plain row each, without the cost of a model instance a row
    # (docs/performance.md).
    rows = [
        {
            "event_id": d.event.event_id,
            "checkpoint": d.event.checkpoint,
            "payment_id": d.event.payment_id,
            "card_id": d.event.card_id,
            "rider_id": d.event.rider_id,
            "pickup_zone": d.event.pickup_zone,
            "amount_cents": d.event.amount_cents,
            "currency": d.event.currency,
            "occurred_at": d.event.occurred_at,
            "scored_at": d.scored_at,
            "score": d.scored.score,
            "decision": d.scored.decision,
            "model_version": d.scored.model_version,
            "role": d.scored.role,
            "reasons": d.scored.reasons,
            "degraded": bool(d.scored.degraded_features),
            "degraded_features": d.scored.degraded_features,
            "rescored_at": None,
            "latency_ms": d.latency_ms,
            "consistency": d.features.get("consistency") or "",
            "consistency_lag_ms": d.features.get("consistency_lag_ms"),
            "matched": d.scored.matched,
            "failed_model": d.scored.failed_model,
            "model_us": d.scored.model_us,
            "batch_id": batch_id,
        }
        for d in drafts
    ]
    by_event = {d.event.event_id: d for d in drafts}
    shadows = [
        ShadowScore(
            event_id=d.event.event_id,
            model_version=version,
            score=score,
            decision=decision,
            scored_at=d.scored_at,
            model_us=model_us,
        )
        for d in drafts
        for version, score, decision, model_us in d.scored.shadows
    ]
    reviewed = any(d.scored.decision == Decision.REVIEW for d in drafts)
    # The scores with their UnloggedScore rows are one statement on PostgreSQL: when there is
    # nothing else to write, no transaction either (one round trip rather than three).
    alone = copy_available() and not shadows and not reviewed
    with transaction.atomic() if not alone else nullcontext():
        if copy_available():
            inserted = insert_rows(
                FraudScore,
                rows,
                unique="event_id",
                companion=UnloggedScore,
                json_text={"features": [d.features_json for d in drafts]},
            )
        else:
            FraudScore.objects.bulk_create(
                [
                    FraudScore(**row, features=d.features)
                    for row, d in zip(rows, drafts, strict=True)
                ],
                ignore_conflicts=True,
            )
            inserted = dict(
                FraudScore.objects.filter(
                    event_id__in=list(by_event), batch_id=batch_id
                ).values_list("event_id", "id")
            )
            UnloggedScore.objects.bulk_create(
                [UnloggedScore(score_id=i) for i in inserted.values()]
            )
        ShadowScore.objects.bulk_create(shadows, ignore_conflicts=True)
        ReviewItem.objects.bulk_create(
            [
                _review_item(score_id, by_event[event_id].event)
                for event_id, score_id in inserted.items()
                if by_event[event_id].scored.decision == Decision.REVIEW
            ],
            ignore_conflicts=True,
        )
    flagged = [
        score_id
        for event_id, score_id in inserted.items()
        if by_event[event_id].scored.decision != Decision.APPROVE
    ]
    return Recorded(inserted, flagged)


def log_items(items: Sequence[ScoreDraft | FraudScore]) -> list[LogItem]:
    """Return the ``LogItem`` of each of ``items``: drafts just recorded (their vectors as held
    in memory) or recorded scores (the vectors kept on them)."""
    return [
        LogItem(str(i.event.event_id), i.scored.model_version, i.scored.role, i.features_json)
        if isinstance(i, ScoreDraft)
        else LogItem(str(i.event_id), i.model_version, i.role, orjson.dumps(i.features).decode())
        for i in items
    ]


def scores_mark_logged(*, score_ids: Sequence[int]) -> int:
    """Mark the scores ``score_ids`` logged (delete their ``UnloggedScore``), once their vectors
    are in the feature log and their ``fraud.scored.v1`` events acknowledged; return how many
    were given.

    A score logged twice (a crash between the write and the mark) has two rows in the log, of
    which its reader keeps the latest, identical to the first, and its event is published twice
    with one event id.
    """
    delete_ids(UnloggedScore, score_ids)
    return len(score_ids)


def scores_log_sweep(
    *,
    config: FeatureConfig,
    producer: Producer,
    scored_before: datetime,
    topic: str = FraudScored.topic,
    limit: int = 1000,
    timeout_s: float = 30.0,
) -> int:
    """Finish the scores recorded before ``scored_before`` and still unlogged (a failed log write
    or publish, a crash between the commit and both), oldest first, at most ``limit``: write
    their served vectors to the feature log (one file), publish their ``fraud.scored.v1``
    events on ``topic`` again, and mark those acknowledged logged; return how many. Raise
    ``BusError`` when some were not acknowledged (they stay unlogged, for the next sweep), and
    what the log write raises, marking nothing.

    The rows are locked while swept; rows another scorer has locked are skipped, so two sweeps
    do not log the same score.
    """
    with transaction.atomic():
        # The pending rows alone (a few seconds' worth), in key order: no join with the scores
        # to choose them, and none of the rows the scorer is about to mark is locked.
        rows = UnloggedScore.objects.select_for_update(
            skip_locked=connection.features.has_select_for_update_skip_locked
        ).filter(created_at__lt=scored_before)
        ids = list(rows.order_by("score_id").values_list("score_id", flat=True)[:limit])
        scores = list(FraudScore.objects.filter(id__in=ids).order_by("id"))
        if not scores:
            return 0
        feature_log_items(config, log_items(scores))
        errors = producer.publish(
            [scored_event(s).record(topic) for s in scores], timeout=timeout_s
        )
        done = scores_mark_logged(
            score_ids=[s.id for s, e in zip(scores, errors, strict=True) if e is None]
        )
    failed = next((e for e in errors if e is not None), None)
    if failed is not None:
        raise BusError(f"{len(scores) - done} fraud.scored events not acknowledged: {failed}")
    return done


def scores_rescore(
    *,
    models: ModelSet,
    reader: FeatureReader,
    limit: int = 20_000,
    batch: int = 500,
    threads: int = 1,
    checkpoint: str = AUTHORIZATION,
) -> int:
    """Score again the degraded scores of ``checkpoint`` not rescored yet, oldest first,
    ``batch`` at a time (one feature read and one transaction each) until none is left or
    ``limit`` were done, with the features the store serves now (``reader``: the checkpoint's
    feature service; ``models``: its deployments); return how many were rescored.

    For each: ``score``, ``reasons`` (always explained), ``model_version`` and ``role`` (of the
    model deciding for the card now) and ``rescored_at`` change. The row stays the same (same
    id, payment event, ``degraded`` and ``degraded_features``: how it was decided), and so does
    ``decision``: it was published and acted upon; the analysts reviewing a degraded payment
    see the full score and its reasons. No event is published and nothing is logged (the
    feature log keeps what was served at decision time). The features are those of the rescore
    instant, not the payment's: events since then count. When the store still fails, the loop
    stops there. Idempotent: a rescored score is not selected again.
    """
    done = 0
    while models.champion is not None and done < limit:
        degraded = scores_degraded(limit=min(batch, limit - done), checkpoint=checkpoint)
        if not degraded:
            break
        requests = [s.features["request"] for s in degraded]
        vectors = reader.read(requests)
        if vectors is None:
            break
        outcomes = score_batch(
            models,
            requests=requests,
            vectors=vectors,
            degraded_review_cents=0,
            threads=threads,
            explain_all=True,
        )
        now = timezone.now()
        for score, outcome in zip(degraded, outcomes, strict=True):
            score.score = outcome.score
            score.reasons = outcome.reasons
            score.model_version = outcome.model_version
            score.role = outcome.role
            score.rescored_at = now
        FraudScore.objects.bulk_update(
            degraded, ["score", "reasons", "model_version", "role", "rescored_at"]
        )
        done += len(degraded)
    return done
