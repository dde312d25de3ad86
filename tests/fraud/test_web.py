"""The analyst page of flagged payments: staff only, newest first, in plain words."""

from __future__ import annotations

import pytest

from .live_factories import score_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, django_user_model):
    user = django_user_model.objects.create_user("analyst", password="pw", is_staff=True)
    client.force_login(user)
    return client


def test_anonymous_visitors_are_sent_to_log_in(client):
    response = client.get("/fraud/")

    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/fraud/"


def test_users_who_are_not_staff_are_refused(client, django_user_model):
    score_make()
    client.force_login(django_user_model.objects.create_user("rider-x", password="pw"))

    response = client.get("/fraud/")

    assert response.status_code == 403
    assert b"card-7f3a9c41" not in response.content
    assert b"9c41" not in response.content


def test_the_page_lists_flags_newest_first_and_never_approvals(staff_client):
    approved = score_make(decision="approve", score=0.02, card_id="card-approved1")
    review = score_make(decision="review", score=0.8125)
    decline = score_make(
        decision="decline", score=0.97, amount_cents=4999, card_id="card-00002bad", degraded=True
    )

    response = staff_client.get("/fraud/")

    assert response.status_code == 200
    html = response.content.decode()
    rows = response.context["flags"]
    assert [flag.id for flag in rows] == [decline.id, review.id]
    assert response.context["last_id"] == decline.id
    assert f'id="flag-{approved.id}"' not in html
    assert "pprove1" not in html
    assert html.index(f'id="flag-{decline.id}"') < html.index(f'id="flag-{review.id}"')
    assert f'data-last-id="{decline.id}"' in html
    assert 'data-socket-path="/ws/fraud/flags/"' in html
    assert 'id="no-flags" class="muted empty" hidden' in html


def test_a_row_shows_the_decision_the_money_the_card_tail_and_the_reasons(staff_client):
    flag = score_make(decision="review", score=0.8125, amount_cents=18250)

    html = staff_client.get("/fraud/").content.decode()

    row = html[html.index(f'<tr id="flag-{flag.id}"') :]
    row = row[: row.index("</tr>")]
    assert '<span class="badge badge-review">Review</span>' in row
    assert '<td class="num">0.813</td>' in row
    assert '<td class="num">€182.50</td>' in row
    assert '<td class="card-tail">•••• 9c41</td>' in row
    assert "<td>Z-1-3</td>" in row
    assert '<td class="model">fraud-lgbm-20250314-ab12cd</td>' in row
    assert "degraded" not in row
    assert "stale" not in row
    assert (
        '<ul class="reasons"><li>9 payments on this card in the last 10 minutes</li>'
        "<li>The card was added 30 minutes ago</li>"
        "<li>The amount is €182.50</li></ul>"
    ) in row
    assert "Pickup in zone Z-1-3" not in row
    assert '<time datetime="2025-03-14T09:26:53+00:00">14 Mar, 09:26:53</time>' in row


def test_a_degraded_canary_flag_says_so(staff_client):
    flag = score_make(decision="decline", degraded=True, role="canary", reasons=[])

    html = staff_client.get("/fraud/").content.decode()

    row = html[html.index(f'<tr id="flag-{flag.id}"') :]
    row = row[: row.index("</tr>")]
    assert (
        '<span class="badge badge-degraded" title="Scored without fresh values of: '
        'card_velocity__payments_10m">degraded</span>'
    ) in row
    assert '<span class="muted">(canary)</span>' in row
    assert '<li class="muted">No single feature stands out</li>' in row


def test_a_flag_scored_on_stale_features_says_how_far_behind_they_were(staff_client):
    stale = score_make(decision="decline", consistency="stale", consistency_lag_ms=2400.0)
    unknown = score_make(decision="review", consistency="stale")

    html = staff_client.get("/fraud/").content.decode()

    def row(flag):
        found = html[html.index(f'<tr id="flag-{flag.id}"') :]
        return found[: found.index("</tr>")]

    assert (
        '<span class="badge badge-stale" title="Scored before every earlier event was counted: '
        'its features were up to 2.4 s behind">stale</span>'
    ) in row(stale)
    assert "up to an unknown time behind" in row(unknown)


def test_with_no_flags_the_page_says_so(staff_client):
    score_make(decision="approve")

    response = staff_client.get("/fraud/")

    html = response.content.decode()
    assert response.context["last_id"] == 0
    assert '<p id="no-flags" class="muted empty">No flagged payments yet.</p>' in html
    assert 'data-last-id="0"' in html
