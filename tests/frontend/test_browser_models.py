"""The model console in Chromium: an ML engineer reads the models with their gates, starts a
bandit between the champion and a candidate (confirmed), sees its arms, stops it, promotes a
model and finds each change in the history; an analyst reads the same page with nothing to
press; the page says what to do when there is no model yet."""

from __future__ import annotations

import uuid
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone
from playwright.sync_api import expect

from fraud.models import Deployment, ShadowScore
from fraud.services.reviews import analyst_ensure
from ml.drift import reference
from ml.labels import REVIEW, Evidence
from ml.models import Experiment, ModelVersion
from ml.services import label_record, model_promote
from ml.services.people import ml_engineer_ensure
from tests.fraud.live_factories import score_make
from tests.frontend.test_browser_rider import _log_in, _screenshot
from tests.ml.registered import FEATURES, model_registered

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def registered(settings, tmp_path):
    settings.ML_MODELS_DIR = tmp_path / "models"
    champion, candidate, other = model_registered(1), model_registered(2), model_registered(3)
    rejected = model_registered(4, status="rejected")
    ModelVersion.objects.filter(version=rejected).update(
        gates=[
            {"gate": "smoke", "passed": True, "figures": {}, "reason": ""},
            {
                "gate": "backtest",
                "passed": False,
                "figures": {},
                "reason": "average precision 0.412 against the champion's 0.700",
            },
        ]
    )
    model_promote(version=champion)
    return champion, candidate, other, rejected


def test_an_ml_engineer_runs_a_bandit_and_promotes_a_model(
    asgi_server, page, artifacts_dir, registered
):
    champion, candidate, other, rejected = registered
    ml_engineer_ensure(username="mona", password="mona-pass")
    page.on("dialog", lambda dialog: dialog.accept())
    _log_in(page, asgi_server, "mona", "mona-pass")
    page.get_by_role("link", name="Models").click()

    expect(page.locator("#champion")).to_contain_text(champion)
    expect(page.locator(f"#models tr:has-text('{rejected}')")).to_contain_text(
        "backtest: average precision 0.412 against the champion's 0.700"
    )
    expect(page.locator("#bandit")).to_contain_text("No bandit has run")
    # Only approved models that are not the champion can be compared.
    expect(page.get_by_label(f"Compare {rejected}")).to_have_count(0)
    expect(page.get_by_label(f"Compare {champion}")).to_have_count(0)
    page.get_by_label(f"Compare {candidate}").check()
    page.get_by_role("button", name="Compare the ticked with the champion").click()

    expect(page.locator(".flash")).to_contain_text("1 candidate against the champion")
    arms = page.locator("#arms tbody tr")
    expect(arms).to_have_count(2)
    expect(arms.nth(1)).to_contain_text(candidate)
    expect(arms.nth(1)).to_contain_text("50 %")
    assert Deployment.objects.get(model_version=candidate).role == "canary"
    _screenshot(page, artifacts_dir, "models-bandit.png")

    page.get_by_role("button", name="Stop the bandit").click()
    expect(page.locator(".flash")).to_contain_text("stopped; the champion decides alone")
    assert Experiment.objects.get().status == "stopped"
    assert Deployment.objects.get(model_version=candidate).role == "retired"

    page.get_by_role("button", name=f"Promote {other}").click()
    expect(page.locator(".flash")).to_contain_text(f"{other} is the champion")
    expect(page.locator("#champion")).to_contain_text(other)
    history = page.locator("#history")
    expect(history).to_contain_text(f"{other} to champion: promoted by mona")
    expect(history).to_contain_text(
        f"{champion} from champion to shadow: the previous champion, kept as a shadow for a "
        f"rollback (replaced by {other})"
    )
    expect(history).to_contain_text(f"{candidate} from canary to retired: bandit")
    _screenshot(page, artifacts_dir, "models.png")


def test_a_capture_model_is_promoted_to_the_capture_champion_beside_the_first(
    asgi_server, page, registered
):
    champion = registered[0]
    capture = model_registered(5, service="fraud_capture_v1")
    ml_engineer_ensure(username="mona", password="mona-pass")
    page.on("dialog", lambda dialog: dialog.accept())
    _log_in(page, asgi_server, "mona", "mona-pass")
    page.goto(f"{asgi_server.url}/ml/")
    row = page.locator(f"#models tr:has-text('{capture}')")
    expect(row.locator(".badge-capture")).to_have_text("capture")
    # Shadows and canaries serve the authorization: a capture model is only promoted.
    expect(page.get_by_role("button", name=f"Shadow {capture}")).to_have_count(0)
    page.get_by_role("button", name=f"Promote {capture}").click()
    expect(page.locator(".flash")).to_contain_text(f"{capture} is the champion")
    expect(row).to_contain_text("capture champion")
    expect(page.locator(f"#models tr:has-text('{champion}')")).to_contain_text("champion")
    roles = dict(Deployment.objects.values_list("model_version", "checkpoint"))
    assert roles == {champion: "authorization", capture: "capture"}
    assert set(Deployment.objects.values_list("role", flat=True)) == {"champion"}


def test_an_analyst_reads_the_console_with_nothing_to_press(asgi_server, page, registered):
    _, candidate, other, _ = registered
    model_promote(version=other, role="shadow")
    for i in range(20):
        scored = score_make(
            decision="review" if i < 2 else "approve", score=0.9 if i < 2 else 0.1, model_us=35.0
        )
        ShadowScore.objects.create(
            event_id=scored.event_id, model_version=other, score=0.5, scored_at=scored.scored_at,
            decision="review" if i < 4 else "approve", model_us=120.0,
        )  # fmt: skip
    analyst_ensure(username="ana", password="ana-pass")
    _log_in(page, asgi_server, "ana", "ana-pass")
    page.goto(f"{asgi_server.url}/ml/")

    expect(page.locator("#models")).to_contain_text(candidate)
    shadow = page.locator("#shadow-table tbody tr")
    expect(shadow).to_contain_text(other)
    expect(shadow).to_contain_text("90 %")  # the same decision on 18 of 20 payments
    expect(shadow).to_contain_text("0.200 (0.100)")  # flags: the shadow's, the champion's
    expect(shadow).to_contain_text("120 µs (35 µs)")  # each model's prediction, p99
    hours = page.locator("details.shadow-hours")
    hours.locator("summary").click()
    expect(hours.locator("tbody tr")).to_have_count(1)
    expect(hours.locator("tbody tr")).to_contain_text("ago")
    expect(hours.locator("tbody tr")).to_contain_text("0 (0)")  # no outcome known yet
    page.wait_for_load_state("load")
    per_hour = "Chart.getChart(document.getElementById('chart-shadows')).data.datasets"
    assert page.evaluate(f"() => {per_hour}.map(d => d.data)") == [[0.9]]  # one hour so far
    expect(page.get_by_text("You can read this page")).to_be_visible()
    expect(page.get_by_role("checkbox")).to_have_count(0)
    expect(page.get_by_role("button", name="Compare the ticked with the champion")).to_have_count(0)
    expect(page.locator("#deploy")).to_have_count(0)


def test_with_no_model_the_page_says_what_to_do(asgi_server, page):
    ml_engineer_ensure(username="mona", password="mona-pass")
    _log_in(page, asgi_server, "mona", "mona-pass")
    page.goto(f"{asgi_server.url}/ml/")

    expect(page.locator("#champion")).to_contain_text("No model decides yet")
    expect(page.locator("#models-total")).to_have_text("0 model versions")
    expect(page.get_by_text("No model is registered yet.")).to_be_visible()
    expect(page.locator("#history")).to_contain_text("Nothing deployed yet.")


def test_the_performance_page_charts_each_model_per_period(
    asgi_server, page, artifacts_dir, registered
):
    champion, candidate, _, _ = registered
    now = timezone.now()
    hour_start = now.replace(minute=0, second=0, microsecond=0)  # ten payments in each hour
    for hour, version in ((3, champion), (2, champion), (1, candidate)):
        for i in range(10):
            scored = score_make(
                decision="review" if i < 2 else "approve", score=0.9 if i < 2 else 0.1,
                scored_at=hour_start - timedelta(hours=hour) + timedelta(minutes=i + 1),
                model_version=version,
            )  # fmt: skip
            if i < 3:
                label_record(
                    payment_id=scored.payment_id,
                    evidence=Evidence(REVIEW, i < 2, "x", now, str(uuid.uuid4())),
                )
    ml_engineer_ensure(username="mona", password="mona-pass")
    _log_in(page, asgi_server, "mona", "mona-pass")
    page.goto(f"{asgi_server.url}/ml/")
    page.get_by_role("link", name="Performance").click()

    rows = page.locator("#performance tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text(candidate)  # newest first
    expect(rows.first).to_contain_text("20 %")
    expect(rows.first).to_contain_text("3 (2)")  # outcomes known (fraud)
    drawn = "id => Chart.getChart(document.getElementById(id)).data.datasets.length"
    assert page.evaluate(drawn, "chart-ap") == 2  # one line per model
    assert page.evaluate(drawn, "chart-load") == 2
    # Periods in the viewer's words, not the server's.
    assert "UTC" not in rows.first.locator("time").inner_text()
    _screenshot(page, artifacts_dir, "performance.png")


def test_the_performance_page_with_no_payment_says_so(asgi_server, page):
    ml_engineer_ensure(username="mona", password="mona-pass")
    _log_in(page, asgi_server, "mona", "mona-pass")
    page.goto(f"{asgi_server.url}/ml/performance/")

    expect(page.get_by_text("No payment has been scored yet")).to_be_visible()
    expect(page.locator("canvas")).to_have_count(0)


def test_the_drift_page_draws_the_psi_per_hour_against_the_threshold(
    asgi_server, page, artifacts_dir, registered
):
    champion, _, _, _ = registered
    rng = np.random.default_rng(3)
    ModelVersion.objects.filter(version=champion).update(
        metrics={"reference": {"score": reference(rng.beta(1, 20, 5000))}}
    )
    hour_start = timezone.now().replace(minute=0, second=0, microsecond=0)
    # Two hours like the training set, then one whose scores moved up.
    for hour, (a, b) in ((3, (1, 20)), (2, (1, 20)), (1, (5, 5))):
        for i, score in enumerate(rng.beta(a, b, 80)):
            score_make(
                decision="approve", score=float(score), model_version=champion,
                scored_at=hour_start - timedelta(hours=hour) + timedelta(seconds=20 * i + 1),
            )  # fmt: skip
    ml_engineer_ensure(username="mona", password="mona-pass")
    _log_in(page, asgi_server, "mona", "mona-pass")
    page.goto(f"{asgi_server.url}/ml/")
    page.get_by_role("link", name="Drift").click()

    latest = page.locator("#drift-latest")
    expect(latest).to_contain_text("The last hour (80 payments)")
    expect(latest).to_contain_text("above 0.2")
    page.wait_for_load_state("load")
    chart = "Chart.getChart(document.getElementById('chart-drift')).data.datasets"
    datasets = page.evaluate(f"() => {chart}.map(d => [d.label, d.data.length])")
    assert datasets == [["score", 3], ["trigger threshold", 3]]
    psi = page.evaluate(f"() => {chart}[0].data")
    assert psi[0] < 0.2 < psi[2]  # steady, then drifted
    expect(page.locator("#served")).to_contain_text("has not run yet")
    _screenshot(page, artifacts_dir, "drift.png")


def test_the_drift_page_without_a_champion_says_so(asgi_server, page):
    ml_engineer_ensure(username="mona", password="mona-pass")
    _log_in(page, asgi_server, "mona", "mona-pass")
    page.goto(f"{asgi_server.url}/ml/drift/")

    expect(page.get_by_text("No champion is deployed")).to_be_visible()


def test_the_models_page_with_hundreds_of_models_shows_the_newest(asgi_server, page, registered):
    champion = registered[0]
    model = ModelVersion.objects.get(version=champion)
    ModelVersion.objects.bulk_create(
        [
            ModelVersion(
                version=f"fraud-lgbm-bulk-{i:04d}", artifact_path=model.artifact_path,
                sha256=f"{i:064x}", feature_service=model.feature_service,
                feature_names=model.feature_names, data_start=model.data_start,
                data_end=model.data_end, training_rows=100, code_version="x",
                source=model.source, status="rejected",
            )
            for i in range(400)
        ]
    )  # fmt: skip
    ml_engineer_ensure(username="mona", password="mona-pass")
    _log_in(page, asgi_server, "mona", "mona-pass")
    page.goto(f"{asgi_server.url}/ml/")

    expect(page.locator("#models-total")).to_have_text("404 model versions")
    expect(page.locator("#models tbody tr")).to_have_count(200)
    expect(page.locator("#models-shown")).to_have_text(
        "The newest 200 of 404; the others are in the admin."
    )
    expect(page.locator("#champion")).to_contain_text(champion)  # not among the newest 200


def test_a_models_page_shows_its_lineage_gates_and_what_it_leans_on(
    asgi_server, page, artifacts_dir, registered
):
    champion, _, _, rejected = registered
    ModelVersion.objects.filter(version=rejected).update(
        parent=ModelVersion.objects.get(version=champion),
        kind="fine_tune",
        review_threshold=0.4123,
        decline_threshold=0.87,
    )
    analyst_ensure(username="ana", password="ana-pass")
    _log_in(page, asgi_server, "ana", "ana-pass")
    page.goto(f"{asgi_server.url}/ml/")
    page.get_by_role("link", name=rejected).click()

    expect(page.locator("h1")).to_have_text(rejected)
    lineage = page.locator("#lineage li")
    expect(lineage).to_have_count(2)
    expect(lineage.nth(0)).to_contain_text("fine-tuned from the next")
    expect(lineage.nth(1)).to_contain_text(champion)
    failed = page.locator("#gates details[open]")
    expect(failed).to_have_count(1)
    expect(failed).to_contain_text("backtest: average precision 0.412 against the champion's 0.700")
    expect(page.locator("#matched-thresholds")).to_contain_text(
        "it would review from a score of 0.412 and decline from 0.870"
    )
    # The small test models learn a label made of their first input.
    expect(page.locator("#importances tbody tr").first).to_contain_text(FEATURES[0])
    expect(page.locator("#model-history")).to_contain_text("Never deployed.")
    lineage.nth(1).get_by_role("link").click()
    expect(page.locator("#model-history")).to_contain_text("to champion: by hand")
    expect(page.locator("#matched-thresholds")).to_have_count(0)  # gated without a champion
    _screenshot(page, artifacts_dir, "model.png")


def test_an_ml_engineer_starts_a_shadow_and_a_canary_then_rolls_a_promotion_back(
    asgi_server, page, registered
):
    champion, candidate, other, _ = registered
    ml_engineer_ensure(username="mona", password="mona-pass")
    page.on("dialog", lambda dialog: dialog.accept())
    _log_in(page, asgi_server, "mona", "mona-pass")
    page.goto(f"{asgi_server.url}/ml/")

    page.get_by_role("button", name=f"Shadow {candidate}").click()
    expect(page.locator(".flash")).to_contain_text(f"{candidate} is a shadow")
    page.get_by_label(f"Canary share for {other}").select_option("0.25")
    page.get_by_role("button", name=f"Canary {other}").click()
    expect(page.locator(".flash")).to_contain_text(f"{other} is a canary deciding for 25% of cards")
    roles = {d.model_version: (d.role, d.canary_share) for d in Deployment.objects.all()}
    assert roles == {
        champion: ("champion", 0.0),
        candidate: ("shadow", 0.0),
        other: ("canary", 0.25),
    }
    expect(page.locator(f"#models tr:has-text('{other}')")).to_contain_text("canary, 25 % of cards")

    page.get_by_role("button", name=f"Promote {other}").click()
    expect(page.locator("#champion")).to_contain_text(other)
    # The champion it replaced stays beside it, and can be brought back in one click.
    page.get_by_role("button", name=f"Roll back to {champion}").click()
    expect(page.locator("#champion")).to_contain_text(champion)
    assert Deployment.objects.get(model_version=champion).role == "champion"
    expect(page.locator("#history")).to_contain_text(
        f"{champion} from shadow to champion: promoted by mona"
    )
