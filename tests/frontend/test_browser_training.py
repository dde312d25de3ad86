"""The training page in Chromium: an ML engineer asks for a full retrain (confirmed), is told
when one is already queued, and watches it run without reloading: its progress with an
estimate of what is left, then the model it registered with its gates' verdict."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from ml.models import TrainingRun, TriggerConfig
from ml.services import training_run
from ml.services.people import ml_engineer_ensure
from tests.frontend.test_browser_rider import _log_in, _screenshot
from tests.ml.logs import logs_with_labels

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_ml_engineer_starts_a_retrain_and_watches_it_run(
    app_store, asgi_server, page, artifacts_dir, settings, tmp_path
):
    settings.ML_MODELS_DIR = tmp_path / "models"
    settings.ML_FULL_ROUNDS = 20
    logs_with_labels(app_store, 400)
    ml_engineer_ensure(username="mona", password="mona-pass")
    page.on("dialog", lambda dialog: dialog.accept())
    _log_in(page, asgi_server, "mona", "mona-pass")
    page.goto(f"{asgi_server.url}/ml/")
    page.get_by_role("link", name="Training").click()
    expect(page.get_by_text("No training has run yet.")).to_be_visible()

    page.get_by_role("button", name="Full retrain").click()
    expect(page.locator(".flash")).to_contain_text("A full retrain is queued")
    run = TrainingRun.objects.get()
    assert (run.requested_kind, run.reason, run.status) == ("full", "by mona", "queued")
    page.get_by_role("button", name="Fine-tune the champion").click()
    expect(page.locator(".flash")).to_contain_text("is still queued: one training runs at a time")
    assert TrainingRun.objects.count() == 1

    # The worker takes it and reports its progress: the page follows without a reload.
    TrainingRun.objects.filter(pk=run.pk).update(
        status="running", stage="training", percent=40,
        started_at=timezone.now() - timedelta(seconds=10),
    )  # fmt: skip
    row = page.locator(f"#run-{run.pk}")
    expect(row.locator("progress")).to_have_attribute("value", "40")
    expect(row).to_contain_text("40 %, training; about 1")  # 10 s for 40 %: ~15 s left
    _screenshot(page, artifacts_dir, "training-running.png")

    finished = training_run(request_key=run.request_key)

    expect(row).to_contain_text("done")
    expect(row).to_contain_text(finished.model.version)
    expect(row).to_contain_text(finished.model.status)
    _screenshot(page, artifacts_dir, "training.png")


def test_an_ml_engineer_sets_the_triggers_thresholds(asgi_server, page):
    ml_engineer_ensure(username="mona", password="mona-pass")
    _log_in(page, asgi_server, "mona", "mona-pass")
    page.goto(f"{asgi_server.url}/ml/training/")
    form = page.locator("#triggers-form")
    expect(page.locator("#triggers")).to_contain_text("From the settings")

    form.get_by_label("A fine-tune every (new labels)").fill("lots")
    form.get_by_role("button", name="Save the thresholds").click()
    expect(form).to_contain_text("a whole number, please")
    assert not TriggerConfig.objects.exists()

    form.get_by_label("A fine-tune every (new labels)").fill("250")
    form.get_by_label("Drift threshold (PSI)").fill("0.3")
    form.get_by_role("button", name="Save the thresholds").click()
    expect(page.locator(".flash")).to_contain_text("The triggers' thresholds are set")
    expect(page.locator("#triggers")).to_contain_text("Set by mona")
    row = TriggerConfig.objects.get()
    assert (row.labels, row.max_psi) == (250, 0.3)
