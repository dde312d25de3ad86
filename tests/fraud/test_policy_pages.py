"""The lists and rules pages over HTTP: access, refusals with the place of the error, and a
backtest's figures against logged vectors and review outcomes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from fraud.backtest import rule_backtest
from fraud.models import ListEntry, ReviewItem, Rule
from fraud.scoring import unserved_vector, vector_record
from fraud.services.policy import rule_check
from tests.fraud.factories import SERVICE
from tests.fraud.live_factories import score_make
from tests.fraud.test_review_pages import ALLOWED, _client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("who", list(ALLOWED))
def test_access_matrix_of_the_lists_and_rules_urls(who):
    client = _client(who)
    entry = ListEntry.objects.create(kind="card", value="card-x", action="block", reason="test")
    rule = Rule.objects.create(name="r", expression="amount_cents > 1", action="review")
    requests = [
        ("get", "/fraud/lists/", {}, 200),
        ("post", "/fraud/lists/", {"kind": "ip", "value": "10.0.0.9", "action": "block",
                                   "stage": "before", "reason": "botnet"}, 302),
        ("post", f"/fraud/lists/{entry.pk}/remove", {}, 302),
        ("get", "/fraud/rules/", {}, 200),
        ("get", f"/fraud/rules/?backtest={rule.pk}", {}, 200),
        ("post", "/fraud/rules/write", {"do": "save", "name": "big", "action": "review",
                                        "expression": "amount_cents > 9000"}, 302),
        ("post", f"/fraud/rules/{rule.pk}/mode", {"mode": "active"}, 302),
    ]  # fmt: skip
    for method, url, data, allowed in requests:
        response = getattr(client, method)(url, data)
        assert response.status_code == (ALLOWED[who] or allowed), (who, url)
    changed = who in ("analyst", "staff")
    assert ListEntry.objects.filter(kind="ip", removed_at__isnull=True).exists() is changed
    assert Rule.objects.filter(name="big").exists() is changed
    rule.refresh_from_db()
    assert rule.mode == ("active" if changed else "shadow")


def test_a_bad_expression_is_refused_with_its_place_and_nothing_is_saved():
    client = _client("analyst")
    response = client.post(
        "/fraud/rules/write",
        {"do": "save", "name": "burst", "action": "block",
         "expression": "card_payments_10m >= and 5"},
    )  # fmt: skip
    assert response.status_code == 422
    html = response.content.decode()
    assert "Syntax error at character 22 near &#x27;and&#x27;" in html
    assert "card_payments_10m &gt;= and 5\n" + " " * 21 + "^" in html
    assert not Rule.objects.exists()


def test_a_list_entry_needs_a_reason_and_replaces_the_values_earlier_entry():
    client = _client("analyst")
    missing = client.post("/fraud/lists/", {"kind": "card", "value": "card-1", "action": "block"})
    assert missing.status_code == 422
    assert "Say why" in missing.content.decode()
    for action in ("review", "block"):
        client.post(
            "/fraud/lists/",
            {"kind": "card", "value": "card-1", "action": action, "stage": "before",
             "reason": "chargebacks", "expires_in_days": "2"},
        )  # fmt: skip
    live = ListEntry.objects.get(removed_at__isnull=True)
    assert (live.action, live.author.get_username()) == ("block", "ana")
    assert timedelta(days=1.9) < live.expires_at - timezone.now() <= timedelta(days=2)
    html = client.get("/fraud/lists/").content.decode()
    assert "1 entry" in html
    assert "chargebacks" in html


def _logged(score, **values):
    request = {
        "payment_id": score.payment_id, "card_id": score.card_id, "rider_id": score.rider_id,
        "driver_id": None, "pickup_zone": "Z-1-3", "amount_cents": score.amount_cents,
        "distance_km": 2.0, "occurred_at": score.occurred_at.isoformat(),
    }  # fmt: skip
    vector = unserved_vector(request, SERVICE)
    vector.values.update(values)
    score.features = vector_record(
        vector, service=SERVICE, request=request, request_time=datetime(2025, 3, 14, tzinfo=UTC)
    )
    score.save()
    return score


def test_a_backtest_counts_hits_flags_precision_recall_and_review_minutes(settings):
    settings.FRAUD_REVIEW_MINUTES = 4
    now = timezone.now()
    at = now - timedelta(hours=1)
    burst_fraud = _logged(score_make(decision="approve", scored_at=at), card_payments_10m=7)
    burst_ok = _logged(score_make(decision="review", scored_at=at), card_payments_10m=6)
    _logged(score_make(decision="approve", scored_at=at), card_payments_10m=6)
    calm_fraud = _logged(score_make(decision="approve", scored_at=at), card_payments_10m=1)
    _logged(score_make(decision="approve", scored_at=at))  # missing: never a hit
    _logged(score_make(decision="approve", scored_at=now - timedelta(days=9)), card_payments_10m=9)
    for score, outcome in ((burst_fraud, "confirmed_fraud"), (burst_ok, "approved"),
                           (calm_fraud, "refunded_as_fraud")):  # fmt: skip
        ReviewItem.objects.create(score=score, status="decided", outcome=outcome)
    result = rule_backtest(
        rule=rule_check("card_payments_10m >= 5"), action="review", until=now, days=7
    )
    assert (result.payments, result.hits, result.flagged_by_model) == (5, 3, 1)
    assert (result.labelled_hits, result.fraud_hits, result.fraud_total) == (2, 1, 2)
    assert (result.precision, result.recall) == (0.5, 0.5)
    assert result.review_minutes == 8  # two hits the model did not already send to review

    client = _client("analyst")
    html = client.post(
        "/fraud/rules/write",
        {"do": "backtest", "expression": "card_payments_10m >= 5", "action": "review", "days": 7},
    ).content.decode()
    assert "3 payments (60 %)" in html
    assert "50 % (1 fraud of 2 decided)" in html
    assert "about 8 minutes of reviews" in html
    assert not Rule.objects.exists()
