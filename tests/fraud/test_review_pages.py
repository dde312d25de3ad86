"""The review queue and case pages over HTTP: who may open what, and what an analyst sees."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from events.models import OutboxEvent
from fraud.models import ReviewItem
from fraud.scoring import unserved_vector, vector_record
from fraud.services.reviews import analyst_ensure, review_claim
from tests.fraud.factories import SERVICE, model_deploy
from tests.fraud.live_factories import score_make
from tests.rideshare.factories import driver_make, rider_make

pytestmark = pytest.mark.django_db


def _review(**score) -> ReviewItem:
    return ReviewItem.objects.create(
        score=score_make(**score), device_id="dev-9", ip="198.51.100.4"
    )


def _client(who: str) -> Client:
    client = Client()
    if who == "rider":
        client.force_login(rider_make().user)
    elif who == "driver":
        client.force_login(driver_make().user)
    elif who == "analyst":
        client.force_login(analyst_ensure(username="ana", password="pw"))
    elif who == "staff":
        client.force_login(
            get_user_model().objects.create_user("boss", password="pw", is_staff=True)
        )
    return client


ALLOWED = {"anonymous": 302, "rider": 403, "driver": 403, "analyst": None, "staff": None}


@pytest.mark.parametrize("who", list(ALLOWED))
def test_access_matrix_of_every_review_url(who):
    review = _review()
    client = _client(who)
    requests = [
        ("get", "/fraud/", {}, 200),
        ("get", "/fraud/reviews/", {}, 200),
        ("get", f"/fraud/reviews/{review.pk}/", {}, 200),
        ("post", f"/fraud/reviews/{review.pk}/notes", {"text": "seen"}, 302),
        ("post", f"/fraud/reviews/{review.pk}/release", {}, 302),
        ("post", "/fraud/reviews/bulk", {"outcome": "approved"}, 302),
        ("post", f"/fraud/reviews/{review.pk}/decide", {"outcome": "approved"}, 302),
    ]
    for method, url, data, allowed in requests:
        response = getattr(client, method)(url, data)
        expected = ALLOWED[who] or allowed
        assert response.status_code == expected, (who, url)
        if expected == 302 and who == "anonymous":
            assert response["Location"].startswith("/login/?next=")
    review.refresh_from_db()
    decided = who in ("analyst", "staff")
    assert review.status == ("decided" if decided else "open")
    assert OutboxEvent.objects.filter(topic="reviews.decided.v1").count() == int(decided)


def test_the_queue_shows_money_what_is_at_stake_and_who_holds_each():
    ana = analyst_ensure(username="ana", password="pw")
    ben = analyst_ensure(username="ben", password="pw")
    held = _review(amount_cents=18250, score=0.8)
    _review(amount_cents=990, score=0.5)
    review_claim(review=held, analyst=ben)
    client = Client()
    client.force_login(ana)
    html = client.get("/fraud/reviews/").content.decode()
    assert "2 open reviews" in html
    assert "€182.50" in html  # the amount
    assert "€146.00" in html  # 0.8 x the amount at stake
    assert html.index(f'id="review-{held.pk}"') < html.index("€9.90")
    row = html[html.index(f'id="review-{held.pk}"') :]
    assert "ben" in row[: row.index("</tr>")]
    assert "2584" not in html


def test_an_empty_queue_says_so():
    client = _client("analyst")
    html = client.get("/fraud/reviews/").content.decode()
    assert "0 open reviews" in html
    assert "Nothing is waiting for you" in html


def test_the_case_explains_with_signed_bars_in_plain_words_and_money(tmp_path):
    deployment = model_deploy(tmp_path, version="m-case")
    request = {
        "payment_id": "pay-1", "card_id": "card-1", "rider_id": "rider-1", "driver_id": None,
        "pickup_zone": "Z-1-3", "amount_cents": 4200, "distance_km": 3.0,
        "occurred_at": "2025-03-14T12:00:00+00:00",
    }  # fmt: skip
    vector = unserved_vector(request, SERVICE)
    vector.values.update(
        {"card_payments_10m": 6, "card_amount_cents_1h": 2584, "rider_avg_fare_cents_30d": None}
    )
    review = _review()
    score = review.score
    score.model_version = deployment.model_version
    score.features = vector_record(
        vector, service=SERVICE, request=request, request_time=datetime(2025, 3, 14, tzinfo=UTC)
    )
    score.save()
    client = _client("analyst")
    html = client.get(f"/fraud/reviews/{review.pk}/").content.decode()
    assert "€25.84 charged to this card in the last hour" in html
    assert "2584" not in html
    bars = html[
        html.index('id="feature-bars"') : html.index("</ul>", html.index('id="feature-bars"'))
    ]
    assert 'class="bar up"' in bars
    # A missing value is listed without a bar, never as a reason.
    start = bars.rindex("<li", 0, bars.index("No value for rider avg fare cents 30d"))
    missing = bars[start : bars.index("</li>", start)]
    assert "no-bar" in missing
    assert 'class="bar ' not in missing
    assert "The model that scored it is no longer loadable" not in html
    assert "198.51.100.4" in html
    assert "dev-9" in html
    review.refresh_from_db()
    assert review.claimed_by.get_username() == "ana"


def test_a_case_held_by_another_analyst_says_who_and_offers_no_decision():
    review = _review()
    review_claim(review=review, analyst=analyst_ensure(username="ben", password="pw"))
    client = _client("analyst")
    html = client.get(f"/fraud/reviews/{review.pk}/").content.decode()
    assert "ben is reviewing this payment." in html
    assert 'id="decide-form"' not in html
    response = client.post(f"/fraud/reviews/{review.pk}/decide", {"outcome": "confirmed_fraud"})
    assert response.status_code == 409
    assert "ben is reviewing this payment." in response.content.decode()
    assert OutboxEvent.objects.filter(topic="reviews.decided.v1").count() == 0


def test_a_decision_opens_the_next_review_and_a_bad_outcome_is_refused():
    first, second = _review(score=0.9), _review(score=0.6)
    client = _client("analyst")
    bad = client.post(f"/fraud/reviews/{first.pk}/decide", {"outcome": "maybe"})
    assert bad.status_code == 422
    assert "Unknown outcome" in bad.content.decode()
    response = client.post(f"/fraud/reviews/{first.pk}/decide", {"outcome": "confirmed_fraud"})
    assert response["Location"] == f"/fraud/reviews/{second.pk}/"
    response = client.post(f"/fraud/reviews/{second.pk}/decide", {"outcome": "approved"})
    assert response["Location"] == "/fraud/reviews/"
