"""The fraud desk's JSON API (``/fraud/api/``): who may call it, the queue it lists, and a
decision taken through it doing what the page's does (CSRF enforced, one service)."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from events.models import OutboxEvent
from fraud.models import ListEntry, ReviewItem
from fraud.services.reviews import analyst_ensure, review_claim
from tests.fraud.live_factories import score_make
from tests.rideshare.factories import rider_make

pytestmark = pytest.mark.django_db

QUEUE = "/fraud/api/reviews"


def _review(**score) -> ReviewItem:
    return ReviewItem.objects.create(score=score_make(**score))


def _decide_url(review: ReviewItem) -> str:
    return f"/fraud/api/reviews/{review.pk}/decide"


def _analyst_client(*, csrf: bool = False, username: str = "ana") -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(analyst_ensure(username=username, password="pw"))
    return client


def test_anonymous_callers_get_401_and_riders_403_in_words():
    _review()
    answer = Client().get(QUEUE)
    assert answer.status_code == 401
    assert answer.json()["code"] == "unauthenticated"

    rider = Client()
    rider.force_login(rider_make().user)
    answer = rider.get(QUEUE)
    assert answer.status_code == 403
    assert "analysts and staff" in answer.json()["detail"]
    review = _review()
    assert (
        rider.post(_decide_url(review), {"outcome": "approved"}, "application/json").status_code
        == 403
    )
    assert ReviewItem.objects.get(pk=review.pk).status == ReviewItem.Status.OPEN


def test_the_queue_lists_open_reviews_by_expected_loss_and_can_leave_out_claimed_ones():
    small = _review(score=0.9, amount_cents=1000)
    big = _review(score=0.6, amount_cents=90000)
    decided = _review()
    decided.status = ReviewItem.Status.DECIDED
    decided.save()
    other = analyst_ensure(username="bea", password="pw")
    review_claim(review=small, analyst=other)

    client = _analyst_client()
    rows = client.get(QUEUE).json()
    assert [r["id"] for r in rows] == [big.pk, small.pk]
    assert rows[0]["amount_cents"] == 90000
    assert rows[0]["payment_id"] == big.score.payment_id
    assert rows[1]["claimed_by"] == "bea"
    assert [r["id"] for r in client.get(QUEUE, {"unclaimed": "true"}).json()] == [big.pk]
    assert [r["id"] for r in client.get(QUEUE, {"limit": 1}).json()] == [big.pk]
    answer = client.get(QUEUE, {"limit": 0})
    assert answer.status_code == 422
    assert "limit" in answer.json()["detail"]


def test_a_decision_through_the_api_publishes_the_label_and_blocks_the_card():
    review = _review(card_id="card-api-1")
    client = _analyst_client(csrf=True)
    client.get("/fraud/reviews/")  # the queue page sets the CSRF cookie
    token = client.cookies["csrftoken"].value

    refused = client.post(_decide_url(review), {"outcome": "confirmed_fraud"}, "application/json")
    assert refused.status_code == 403  # no CSRF token: nothing written
    assert ReviewItem.objects.get(pk=review.pk).status == ReviewItem.Status.OPEN

    answer = client.post(
        _decide_url(review),
        {"outcome": "confirmed_fraud", "note": "same device as the last ring"},
        "application/json",
        headers={"X-CSRFToken": token},
    )
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["status"] == "decided"
    assert body["outcome"] == "confirmed_fraud"
    assert body["decided_by"] == "ana"
    event = OutboxEvent.objects.get(topic="reviews.decided.v1")
    payload = json.loads(event.payload) if isinstance(event.payload, str) else event.payload
    assert payload["payment_id"] == review.score.payment_id
    assert payload["decision"] == "confirmed_fraud"
    assert ListEntry.objects.filter(value="card-api-1", action=ListEntry.Action.BLOCK).exists()

    again = client.post(
        _decide_url(review), {"outcome": "approved"}, "application/json",
        headers={"X-CSRFToken": token},
    )  # fmt: skip
    assert again.status_code == 409
    assert again.json()["code"] == "conflict"
    assert OutboxEvent.objects.filter(topic="reviews.decided.v1").count() == 1


def test_a_review_held_by_another_analyst_an_unknown_outcome_and_an_unknown_review_are_refused():
    review = _review()
    review_claim(review=review, analyst=analyst_ensure(username="bea", password="pw"))
    client = _analyst_client()
    taken = client.post(_decide_url(review), {"outcome": "approved"}, "application/json")
    assert taken.status_code == 409
    assert "bea" in taken.json()["detail"]

    free = _review()
    bad = client.post(_decide_url(free), {"outcome": "maybe"}, "application/json")
    assert bad.status_code == 422
    assert bad.json()["code"] == "invalid"
    assert "outcome" in bad.json()["errors"]
    missing = client.post(
        "/fraud/api/reviews/999999/decide", {"outcome": "approved"}, "application/json"
    )
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"
    assert not OutboxEvent.objects.filter(topic="reviews.decided.v1").exists()


def test_staff_may_decide_too():
    review = _review()
    client = Client()
    client.force_login(get_user_model().objects.create_user("boss", password="pw", is_staff=True))
    answer = client.post(_decide_url(review), {"outcome": "legitimate"}, "application/json")
    assert answer.status_code == 200
    assert answer.json()["decided_by"] == "boss"
