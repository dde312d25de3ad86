"""Writes of the review queue: analysts claim, release, note and decide the payments the scorer
sent to review; the expiry policy closes those nobody decided.

A decision closes the review with an outcome and publishes ``reviews.decided.v1`` through the
outbox in the same transaction: the booking acts on it (``rideshare.services.verdicts``:
capture, void or refund) and the learning loop reads it as the payment's label. Every write
locks the review row first, so two analysts never both decide one: the second is told who has
it (``ReviewTaken``) or that it is closed (``ReviewClosed``), and nothing is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, Group, Permission
from django.db import transaction
from django.utils import timezone

from events.contracts import ReviewDecided
from events.outbox import outbox_publish
from fraud.access import REVIEW_PERMISSION
from fraud.models import FRAUD_OUTCOMES, ListEntry, ReviewItem, ReviewNote
from fraud.services.policy import list_entry_add

Outcome = ReviewItem.Outcome
ANALYST_GROUP = "analyst"
# The label each outcome gives the payment.
LABELS = {o: "confirmed_fraud" if o in FRAUD_OUTCOMES else "legitimate" for o in Outcome}
EXPIRY_OUTCOMES = {"capture": Outcome.APPROVED, "void": Outcome.LEGITIMATE}
EXPIRY_ANALYST = "expiry policy"
NOTE_MAX = 2000


class ReviewError(Exception):
    """A review action that cannot be taken; ``message`` says why, in the analyst's words."""

    status = 409

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ReviewTaken(ReviewError):
    """Another analyst holds the claim."""


class ReviewClosed(ReviewError):
    """The review was decided already."""


class ReviewInvalid(ReviewError):
    """The request itself is wrong (an unknown outcome, an empty note)."""

    status = 422


def claim_lapse() -> timedelta:
    """Return how long an analyst's claim holds without a decision."""
    return timedelta(minutes=settings.FRAUD_REVIEW_CLAIM_MINUTES)


def claim_holder(review: ReviewItem, *, now: datetime) -> AbstractBaseUser | None:
    """Return who holds a live claim on ``review`` at ``now`` (None: nobody; lapsed claims
    count as none)."""
    if review.claimed_by_id is None or review.claimed_at is None:
        return None
    if review.claimed_at + claim_lapse() <= now:
        return None
    return review.claimed_by


def _locked(review: ReviewItem) -> ReviewItem:
    return (
        ReviewItem.objects.select_for_update(of=("self",))
        .select_related("score", "claimed_by")
        .get(pk=review.pk)
    )


def _check_open_and_free(review: ReviewItem, analyst: AbstractBaseUser, now: datetime) -> None:
    if review.status != ReviewItem.Status.OPEN:
        who = review.decided_by.get_username() if review.decided_by else EXPIRY_ANALYST
        raise ReviewClosed(f"This review was already closed by {who}.")
    holder = claim_holder(review, now=now)
    if holder is not None and holder.pk != analyst.pk:
        raise ReviewTaken(f"{holder.get_username()} is reviewing this payment.")


def review_claim(
    *, review: ReviewItem, analyst: AbstractBaseUser, now: datetime | None = None
) -> ReviewItem:
    """Claim ``review`` for ``analyst`` (renewing their own claim). Raise ``ReviewTaken`` when
    another analyst's claim is live, ``ReviewClosed`` when decided. Publishes nothing."""
    now = now or timezone.now()
    with transaction.atomic():
        review = _locked(review)
        _check_open_and_free(review, analyst, now)
        review.claimed_by, review.claimed_at = analyst, now
        review.save(update_fields=["claimed_by", "claimed_at"])
    return review


def review_release(*, review: ReviewItem, analyst: AbstractBaseUser) -> ReviewItem:
    """Give up ``analyst``'s claim on ``review`` (nothing happens if they do not hold it)."""
    with transaction.atomic():
        review = _locked(review)
        if review.claimed_by_id == analyst.pk and review.status == ReviewItem.Status.OPEN:
            review.claimed_by, review.claimed_at = None, None
            review.save(update_fields=["claimed_by", "claimed_at"])
    return review


def review_note_add(
    *, review: ReviewItem, analyst: AbstractBaseUser, text: str, now: datetime | None = None
) -> ReviewNote:
    """Add ``analyst``'s note to ``review`` (open or decided). Raise ``ReviewInvalid`` for an
    empty note or one longer than ``NOTE_MAX`` characters."""
    text = text.strip()
    if not text:
        raise ReviewInvalid("Write something before saving the note.")
    if len(text) > NOTE_MAX:
        raise ReviewInvalid(f"A note holds at most {NOTE_MAX} characters ({len(text)} given).")
    return ReviewNote.objects.create(review=review, author=analyst, text=text)


def _decide(
    review: ReviewItem,
    *,
    outcome: str,
    analyst: AbstractBaseUser | None,
    now: datetime,
    expired: bool = False,
) -> ReviewItem:
    score = review.score
    review.status = ReviewItem.Status.DECIDED
    review.outcome = outcome
    review.decided_by = analyst
    review.decided_at = now
    review.claimed_by, review.claimed_at = None, None
    review.save(
        update_fields=["status", "outcome", "decided_by", "decided_at", "claimed_by", "claimed_at"]
    )
    outbox_publish(
        ReviewDecided(
            review_id=str(review.pk),
            payment_id=score.payment_id,
            card_id=score.card_id,
            rider_id=score.rider_id,
            pickup_zone=score.pickup_zone or None,
            decision=LABELS[outcome],
            reason=outcome,
            analyst=analyst.get_username() if analyst is not None else EXPIRY_ANALYST,
            expired=expired,
            occurred_at=now,
        )
    )
    return review


def review_decide(
    *,
    review: ReviewItem,
    analyst: AbstractBaseUser,
    outcome: str,
    note: str = "",
    now: datetime | None = None,
) -> ReviewItem:
    """Close ``review`` with ``analyst``'s ``outcome`` (``ReviewItem.Outcome``), with an
    optional ``note``; confirmed fraud also blocks the card (a list entry before the model).
    Publish ``reviews.decided.v1`` (the outcome as ``reason``, its label as
    ``decision``). Raise ``ReviewInvalid`` for an unknown outcome, ``ReviewTaken`` when another
    analyst holds the claim and ``ReviewClosed`` when it was decided; nothing is written then."""
    if outcome not in LABELS:
        raise ReviewInvalid(
            f"Unknown outcome {outcome!r}; choose one of {', '.join(Outcome.values)}."
        )
    now = now or timezone.now()
    with transaction.atomic():
        review = _locked(review)
        _check_open_and_free(review, analyst, now)
        if note.strip():
            review_note_add(review=review, analyst=analyst, text=note, now=now)
        _decide(review, outcome=outcome, analyst=analyst, now=now)
        if outcome == Outcome.CONFIRMED_FRAUD:
            # The card's next payments are declined by the list, before the model.
            list_entry_add(
                kind=ListEntry.Kind.CARD,
                value=review.score.card_id,
                action=ListEntry.Action.BLOCK,
                reason=f"confirmed fraud in review {review.pk}",
                author=analyst,
                now=now,
            )
        return review


def reviews_decide(
    *,
    reviews: Sequence[ReviewItem],
    analyst: AbstractBaseUser,
    outcome: str,
    now: datetime | None = None,
) -> tuple[list[ReviewItem], list[tuple[ReviewItem, str]]]:
    """Decide each of ``reviews`` as ``review_decide`` does, each in its own transaction;
    return those decided and, for the others, why not (taken, closed)."""
    decided, refused = [], []
    for review in reviews:
        try:
            decided.append(review_decide(review=review, analyst=analyst, outcome=outcome, now=now))
        except (ReviewTaken, ReviewClosed) as exc:
            refused.append((review, exc.message))
    return decided, refused


def reviews_escalate(*, now: datetime | None = None) -> tuple[int, int]:
    """Escalate the open reviews older than ``FRAUD_REVIEW_SLA_MINUTES`` (first in the queue
    from then on) and close those older than ``FRAUD_REVIEW_EXPIRY_HOURS`` by
    ``FRAUD_REVIEW_EXPIRY_POLICY`` (``capture``: approved; ``void``: legitimate, refunded),
    each publishing ``reviews.decided.v1`` marked ``expired`` (not a label). Return (escalated,
    expired). Idempotent: a review is escalated once and closed once."""
    now = now or timezone.now()
    sla = now - timedelta(minutes=settings.FRAUD_REVIEW_SLA_MINUTES)
    expiry = now - timedelta(hours=settings.FRAUD_REVIEW_EXPIRY_HOURS)
    escalated = ReviewItem.objects.filter(
        status=ReviewItem.Status.OPEN, escalated_at__isnull=True, created_at__lte=sla
    ).update(escalated_at=now)
    outcome = EXPIRY_OUTCOMES[settings.FRAUD_REVIEW_EXPIRY_POLICY]
    expired = 0
    stale = ReviewItem.objects.filter(status=ReviewItem.Status.OPEN, created_at__lte=expiry)
    for review_id in stale.values_list("pk", flat=True):
        with transaction.atomic():
            review = _locked(ReviewItem(pk=review_id))
            if review.status != ReviewItem.Status.OPEN:
                continue
            _decide(review, outcome=outcome, analyst=None, now=now, expired=True)
            expired += 1
    return escalated, expired


def analyst_ensure(*, username: str, password: str) -> AbstractBaseUser:
    """Create the analyst ``username`` (not staff: the ``analyst`` group, which holds the
    review permission) or reset its password; idempotent on the name."""
    from django.contrib.auth import get_user_model

    group, _ = Group.objects.get_or_create(name=ANALYST_GROUP)
    app, codename = REVIEW_PERMISSION.split(".")
    group.permissions.add(Permission.objects.get(content_type__app_label=app, codename=codename))
    user, _ = get_user_model().objects.get_or_create(username=username)
    user.set_password(password)
    user.save()
    user.groups.add(group)
    return user
