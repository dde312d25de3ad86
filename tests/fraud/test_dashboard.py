"""The dashboard's figures (``fraud.dashboard``) on PostgreSQL, and its pages."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from fraud.dashboard import dashboard_snapshot, id_at
from fraud.models import FraudScore, ReviewItem
from tests.fraud.live_factories import score_make
from tests.fraud.test_review_pages import ALLOWED, _client

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_day_starts():
    """Each test's database is its own: no day boundary remembered from another."""
    from fraud import dashboard

    dashboard._DAY_STARTS.clear()
    yield
    dashboard._DAY_STARTS.clear()


def _at(moment, **kw) -> FraudScore:
    score = score_make(scored_at=moment, **kw)
    return score


def test_id_at_finds_the_first_score_at_or_after_a_moment():
    now = timezone.now().replace(microsecond=0)
    scores = [_at(now - timedelta(minutes=m)) for m in (50, 40, 30, 20, 10)]
    assert id_at(now - timedelta(minutes=35)) == scores[2].id
    assert id_at(now - timedelta(minutes=40)) == scores[1].id
    assert id_at(now - timedelta(hours=2)) == scores[0].id
    assert id_at(now) is None


def test_the_snapshot_counts_the_last_hour_by_minute_and_the_queue_now():
    now = timezone.now().replace(second=30, microsecond=0)
    old = _at(now - timedelta(hours=2), decision="decline")  # outside the hour
    minute_ago = now - timedelta(minutes=1)
    for decision, score, latency in (
        ("approve", 0.02, 10.0), ("approve", 0.04, 20.0), ("review", 0.7, 30.0),
        ("decline", 0.97, 400.0),
    ):  # fmt: skip
        s = _at(minute_ago, decision=decision, score=score)
        FraudScore.objects.filter(pk=s.pk).update(latency_ms=latency)
    waiting = ReviewItem.objects.create(score=_at(now - timedelta(minutes=5), decision="review"))
    ReviewItem.objects.filter(pk=waiting.pk).update(created_at=now - timedelta(minutes=90))
    decided = ReviewItem.objects.create(
        score=old, status="decided", outcome="confirmed_fraud", decided_at=now
    )
    ReviewItem.objects.create(
        score=_at(now - timedelta(minutes=3)), status="decided", outcome="approved", decided_at=now
    )
    snap = dashboard_snapshot(now=now)
    i = snap.minutes.index(minute_ago.replace(second=0).isoformat())
    assert snap.payments[i] == 4
    assert (snap.decisions["approve"][i], snap.decisions["review"][i]) == (2, 1)
    assert snap.flagged_share[i] == 0.5
    assert (snap.latency_p50[i], snap.latency_p99[i]) == (20.0, 400.0)
    assert snap.score_bins[0] == 2  # 0.02 and 0.04 in the first band of 0.05
    assert snap.score_bins[19] == 1
    assert sum(snap.payments) == 6  # the four, and the two reviews' scores of the hour
    assert snap.queue_open == 1
    assert snap.queue_ages == {"< 15 min": 0, "< 1 h": 0, "< 1 day": 1, "older": 0}
    assert snap.outcomes == {"confirmed_fraud": 1, "approved": 1}
    assert snap.review_precision == 0.5
    assert decided.score_id == old.id


def test_card_precision_at_k_is_the_fraud_share_of_the_days_top_cards_once_decided():
    # Midday: minutes before ``now`` are the same day whenever the suite runs (CI at 00:04 put
    # them on yesterday's line).
    now = timezone.now().replace(hour=12, minute=0, second=0, microsecond=0)
    top = _at(now - timedelta(minutes=5), decision="decline", score=0.99, card_id="card-a")
    second = _at(now - timedelta(minutes=4), decision="review", score=0.9, card_id="card-b")
    _at(now - timedelta(minutes=3), decision="review", score=0.8, card_id="card-a")
    ReviewItem.objects.create(score=top, status="decided", outcome="confirmed_fraud")
    ReviewItem.objects.create(score=second, status="decided", outcome="approved")
    snap = dashboard_snapshot(now=now)
    assert snap.precision_days[-1] == now.date().isoformat()
    assert (snap.precision_at_k[-1], snap.labelled_cards[-1]) == (0.5, 2)
    assert snap.precision_at_k[0] is None


def test_an_empty_dashboard_has_no_figures_but_draws():
    snap = dashboard_snapshot(now=timezone.now())
    assert (sum(snap.payments), snap.queue_open, snap.review_precision) == (0, 0, None)
    html = _client("analyst").get("/fraud/dashboard/").content.decode()
    assert 'id="chart-volume"' in html
    assert "vendor/chartjs-4.6.2/chart.umd.min.js" in html


@pytest.mark.parametrize("who", list(ALLOWED))
def test_access_to_the_dashboard_and_its_data(who):
    client = _client(who)
    for url in ("/fraud/dashboard/", "/fraud/dashboard/data"):
        assert client.get(url).status_code == (ALLOWED[who] or 200)
    if ALLOWED[who] is None:
        assert client.get("/fraud/dashboard/data").json()["queue_open"] == 0


def test_a_busy_hour_is_read_from_a_sample_of_every_step_th_id(monkeypatch):
    from fraud import dashboard

    monkeypatch.setattr(dashboard, "SAMPLE_MAX", 5)
    now = timezone.now()
    for _ in range(20):
        _at(now - timedelta(minutes=2), decision="approve", score=0.01)
    snap = dashboard_snapshot(now=now)
    assert sum(snap.payments) == 20  # counts are exact
    assert sum(snap.score_bins) == 5  # scores come from every fourth id


def test_a_past_days_start_is_bisected_once(django_assert_max_num_queries):
    now = timezone.now()
    _at(now - timedelta(days=3))
    dashboard_snapshot(now=now)
    from fraud import dashboard

    remembered = dict(dashboard._DAY_STARTS)
    assert len(remembered) >= 2  # three days ago and the day after it, at least
    with django_assert_max_num_queries(120):
        # Without the memory, 28 bisections of ~20 queries each.
        dashboard_snapshot(now=now)
