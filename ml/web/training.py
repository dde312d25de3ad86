"""The ML console's training page: ask for a training now (full or fine-tune), watch the
trainings run (stage, percent, an estimate of what is left), what each produced and why it ran,
and the triggers that fired. Analysts read it; ML engineers and staff also ask."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from fraud.selectors import scored_event_time_latest
from ml.access import can_manage_models, models_manager_required, models_viewer_required
from ml.models import TrainingRun
from ml.selectors import trainings_recent, trigger_firings_recent
from ml.services import training_request
from ml.services.triggers import (
    EDITABLE,
    TriggerSettingsInvalid,
    trigger_settings_set,
    trigger_values,
)


def _runs_context() -> dict:
    now = timezone.now()
    runs = trainings_recent(limit=50)
    for run in runs:
        run.seconds = None
        run.left = None
        if run.started_at:
            end = run.finished_at or now
            run.seconds = max(0.0, (end - run.started_at).total_seconds())
            if run.status == TrainingRun.Status.RUNNING and 0 < run.percent < 100:
                run.left = run.seconds * (100 - run.percent) / run.percent
    return {"runs": runs, "now": now}


def _page(request: HttpRequest, *, errors=None, form=None, status: int = 200) -> HttpResponse:
    values, row = trigger_values()
    fields = [
        (name, label, (form or {}).get(name, values[name]), (errors or {}).get(name, ""))
        for name, (label, _, _, _) in EDITABLE.items()
    ]
    return render(
        request,
        "ml/training.html",
        {
            **_runs_context(),
            "firings": trigger_firings_recent(limit=50),
            "can_manage": can_manage_models(request.user),
            "trigger_fields": fields,
            "trigger_row": row,
        },
        status=status,
    )


@require_GET
@models_viewer_required
def training_page(request: HttpRequest) -> HttpResponse:
    """Show the trainings with their progress, the triggers' thresholds and the triggers that
    fired."""
    return _page(request)


@require_POST
@models_manager_required
def triggers_set(request: HttpRequest) -> HttpResponse:
    """Set the triggers' thresholds; refused ones answer 422 with each field's reason."""
    try:
        trigger_settings_set(values=request.POST.dict(), by=request.user.get_username())
    except TriggerSettingsInvalid as exc:
        return _page(request, errors=exc.errors, form=request.POST.dict(), status=422)
    messages.success(request, "The triggers' thresholds are set; the next check reads them.")
    return redirect("ml:training")


@require_GET
@models_viewer_required
def training_runs(request: HttpRequest) -> HttpResponse:
    """The trainings table alone: the page polls it while one runs."""
    return render(request, "ml/_training_runs.html", _runs_context())


@require_POST
@models_manager_required
def training_start(request: HttpRequest) -> HttpResponse:
    """Ask for a full retrain or a fine-tune now, on the data as of the stream's clock."""
    kind = request.POST.get("kind", "")
    if kind not in TrainingRun.Kind.values:
        messages.error(request, "Say full or fine_tune.")
        return redirect("ml:training")
    run, created = training_request(
        kind=kind,
        reason=f"by {request.user.get_username()}"[:32],
        as_of=scored_event_time_latest() or timezone.now(),
    )
    what = "A full retrain" if kind == TrainingRun.Kind.FULL else "A fine-tune"
    if created:
        messages.success(request, f"{what} is queued; its progress shows below.")
    else:
        messages.error(
            request, f"Training {run.pk} is still {run.status}: one training runs at a time."
        )
    return redirect("ml:training")
