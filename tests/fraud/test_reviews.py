"""The review queue's writes (``fraud.services.reviews``) and reads (``fraud.cases``): claims,
decisions published as ``reviews.decided.v1``, bulk decisions, escalation and expiry."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from events.models import OutboxEvent
from fraud.cases import QueueFilter, review_case, review_next, reviews_queue
from fraud.models import ReviewItem, ReviewNote
from fraud.services.reviews import (
    ReviewClosed,
    ReviewInvalid,
    ReviewTaken,
    analyst_ensure,
    review_claim,
    review_decide,
    review_note_add,
    review_release,
    reviews_decide,
    reviews_escalate,
)
from tests.fraud.live_factories import score_make

pytestmark = pytest.mark.django_db

LAPSE = timedelta(minutes=15)


def _review(**score) -> ReviewItem:
    return ReviewItem.objects.create(
        score=score_make(**score), device_id="dev-9", ip="198.51.100.4"
    )


def _published() -> list[dict]:
    return [
        json.loads(row.payload)
        for row in OutboxEvent.objects.filter(topic="reviews.decided.v1").order_by("id")
    ]


@pytest.fixture
def ana():
    return analyst_ensure(username="ana", password="pw")


@pytest.fixture
def ben():
    return analyst_ensure(username="ben", password="pw")


def test_an_analyst_is_not_staff_but_holds_the_review_permission(ana):
    assert (ana.is_staff, ana.is_superuser) == (False, False)
    assert ana.has_perm("fraud.review_payments")
    rider = get_user_model().objects.create_user("rider-x", password="pw")
    assert not rider.has_perm("fraud.review_payments")


def test_a_decision_closes_the_review_and_publishes_the_label_with_its_reason(ana):
    review = _review()
    review_claim(review=review, analyst=ana)
    review_decide(review=review, analyst=ana, outcome="refunded_as_fraud", note="Card tester.")
    review.refresh_from_db()
    assert (review.status, review.outcome, review.decided_by, review.claimed_by) == (
        "decided", "refunded_as_fraud", ana, None,
    )  # fmt: skip
    [event] = _published()
    score = review.score
    assert {k: event[k] for k in ("review_id", "payment_id", "card_id", "rider_id")} == {
        "review_id": str(review.pk),
        "payment_id": score.payment_id,
        "card_id": score.card_id,
        "rider_id": score.rider_id,
    }
    assert (event["decision"], event["reason"], event["analyst"], event["expired"]) == (
        "confirmed_fraud", "refunded_as_fraud", "ana", False,
    )  # fmt: skip
    assert [n.text for n in ReviewNote.objects.filter(review=review)] == ["Card tester."]


@pytest.mark.parametrize(
    ("outcome", "label"),
    [
        ("approved", "legitimate"),
        ("legitimate", "legitimate"),
        ("refunded_as_fraud", "confirmed_fraud"),
        ("confirmed_fraud", "confirmed_fraud"),
    ],
)
def test_each_outcome_gives_its_label(ana, outcome, label):
    review_decide(review=_review(), analyst=ana, outcome=outcome)
    assert [(e["reason"], e["decision"]) for e in _published()] == [(outcome, label)]


def test_a_second_analyst_is_told_who_holds_the_review_and_nothing_is_written(ana, ben):
    review = _review()
    review_claim(review=review, analyst=ana)
    with pytest.raises(ReviewTaken, match="ana is reviewing this payment"):
        review_claim(review=review, analyst=ben)
    with pytest.raises(ReviewTaken, match="ana is reviewing this payment"):
        review_decide(review=review, analyst=ben, outcome="approved", note="mine")
    review.refresh_from_db()
    assert (review.status, review.claimed_by) == ("open", ana)
    assert _published() == []
    assert ReviewNote.objects.count() == 0


def test_a_lapsed_or_released_claim_can_be_taken(ana, ben):
    review = _review()
    now = timezone.now()
    review_claim(review=review, analyst=ana, now=now - LAPSE)
    assert review_claim(review=review, analyst=ben, now=now).claimed_by == ben
    review_release(review=review, analyst=ben)
    assert review_claim(review=review, analyst=ana).claimed_by == ana


def test_a_decided_review_cannot_be_decided_again(ana, ben):
    review = _review()
    review_decide(review=review, analyst=ana, outcome="approved")
    with pytest.raises(ReviewClosed, match="already closed by ana"):
        review_decide(review=review, analyst=ben, outcome="confirmed_fraud")
    with pytest.raises(ReviewClosed):
        review_claim(review=review, analyst=ben)
    assert len(_published()) == 1


def test_an_unknown_outcome_and_an_empty_note_are_refused(ana):
    review = _review()
    with pytest.raises(ReviewInvalid, match="Unknown outcome 'maybe'"):
        review_decide(review=review, analyst=ana, outcome="maybe")
    with pytest.raises(ReviewInvalid, match="Write something"):
        review_note_add(review=review, analyst=ana, text="   ")
    with pytest.raises(ReviewInvalid, match="at most 2000"):
        review_note_add(review=review, analyst=ana, text="x" * 2001)
    assert (ReviewItem.objects.get(pk=review.pk).status, _published()) == ("open", [])


def test_bulk_decides_what_it_can_and_says_why_not_for_the_rest(ana, ben):
    free, held, closed = _review(), _review(), _review()
    review_claim(review=held, analyst=ben)
    review_decide(review=closed, analyst=ben, outcome="approved")
    decided, refused = reviews_decide(
        reviews=[free, held, closed], analyst=ana, outcome="legitimate"
    )
    assert [r.pk for r in decided] == [free.pk]
    assert [(r.pk, why) for r, why in refused] == [
        (held.pk, "ben is reviewing this payment."),
        (closed.pk, "This review was already closed by ben."),
    ]


def test_the_queue_puts_escalated_first_then_what_is_at_stake_then_age(ana, ben):
    small = _review(score=0.9, amount_cents=1000)  # 900 at stake
    large = _review(score=0.6, amount_cents=5000)  # 3000
    late = _review(score=0.5, amount_cents=100)  # 50, but past the SLA
    ReviewItem.objects.filter(pk=late.pk).update(escalated_at=timezone.now())
    decided = _review(score=0.99, amount_cents=99_999)
    review_decide(review=decided, analyst=ana, outcome="approved")
    assert [r.pk for r in reviews_queue(analyst_id=ana.pk)] == [late.pk, large.pk, small.pk]
    review_claim(review=large, analyst=ben)
    mine = reviews_queue(analyst_id=ben.pk, filters=QueueFilter(claim="mine"))
    assert [r.pk for r in mine] == [large.pk]
    free = reviews_queue(analyst_id=ana.pk, filters=QueueFilter(claim="unclaimed"))
    assert [r.pk for r in free] == [late.pk, small.pk]
    big = reviews_queue(analyst_id=ana.pk, filters=QueueFilter(min_amount_cents=2000))
    assert [r.pk for r in big] == [large.pk]
    now = timezone.now()
    assert review_next(analyst_id=ana.pk, after=late, now=now, claim_lapse=LAPSE) == small


def test_escalation_then_expiry_by_policy_each_once(ana, settings):
    settings.FRAUD_REVIEW_SLA_MINUTES = 60
    settings.FRAUD_REVIEW_EXPIRY_HOURS = 72
    settings.FRAUD_REVIEW_EXPIRY_POLICY = "void"
    fresh, late, ancient = _review(), _review(), _review()
    now = timezone.now()
    ReviewItem.objects.filter(pk=late.pk).update(created_at=now - timedelta(minutes=61))
    ReviewItem.objects.filter(pk=ancient.pk).update(created_at=now - timedelta(hours=73))
    assert reviews_escalate(now=now) == (2, 1)
    assert reviews_escalate(now=now) == (0, 0)
    states = {
        r.pk: (r.status, r.outcome, r.escalated_at is not None) for r in ReviewItem.objects.all()
    }
    assert states == {
        fresh.pk: ("open", "", False),
        late.pk: ("open", "", True),
        ancient.pk: ("decided", "legitimate", True),
    }
    [event] = _published()
    assert (event["reason"], event["expired"], event["analyst"]) == (
        "legitimate",
        True,
        "expiry policy",
    )


def test_the_case_links_the_cards_and_riders_other_payments_and_other_riders_on_the_device(ana):
    review = _review(card_id="card-aaaa1111")
    same_card = score_make(card_id="card-aaaa1111", decision="approve")
    elsewhere = score_make(card_id="card-bbbb2222", decision="approve")
    device = ReviewItem.objects.create(score=score_make(card_id="card-cccc3333"), device_id="dev-9")
    case = review_case(review=review)
    assert [s.pk for s in case.linked] == [same_card.pk]
    assert elsewhere.pk not in [s.pk for s in case.linked]
    assert [r.pk for r in case.linked_devices] == [device.pk]


def test_confirmed_fraud_blocks_the_card_before_the_model_and_other_outcomes_do_not(ana):
    from fraud.models import ListEntry

    fraud, refunded = _review(card_id="card-fraud"), _review(card_id="card-refunded")
    review_decide(review=fraud, analyst=ana, outcome="confirmed_fraud")
    review_decide(review=refunded, analyst=ana, outcome="refunded_as_fraud")
    entry = ListEntry.objects.get()
    assert (entry.kind, entry.value, entry.action, entry.stage, entry.author) == (
        "card", "card-fraud", "block", "before", ana,
    )  # fmt: skip
    assert entry.reason == f"confirmed fraud in review {fraud.pk}"
