"""The ML console's models page: the champion, the running bandit, every model version with its
lineage, holdout figures and gates, and the history of who deployed what. Analysts read it; ML
engineers and staff also start and stop a bandit, promote and retire. Thin: parse, call a
service, redirect with what happened in words."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from features.definitions import FEATURE_SERVICES
from fraud.artifacts import ModelRefused
from fraud.models import AUTHORIZATION, Deployment
from fraud.selectors import deployment_champion, deployments_active, scored_event_time_latest
from ml.access import can_manage_models, models_manager_required, models_viewer_required
from ml.models import ModelVersion
from ml.registry import model_load
from ml.selectors import (
    bandit_latest,
    champion_get,
    console_models,
    model_history,
    model_lineage,
    model_training,
    role_history,
    shadow_of,
)
from ml.services import ExperimentRefused, ModelRejected, bandit_start, bandit_stop, model_promote
from ml.services.registry import deployment_retire, previous_champions

# A canary started by hand decides for at most this share of cards (more is a promotion).
MAX_CANARY_SHARE = 0.5


@require_GET
@models_viewer_required
def models_page(request: HttpRequest) -> HttpResponse:
    """Show the champion, the latest bandit, the model versions and the role history."""
    models, total = console_models()
    bandit = bandit_latest()
    now = scored_event_time_latest() or timezone.now()
    maturity = timedelta(days=settings.ML_CHARGEBACK_MATURITY_DAYS)
    shadows = [
        (m.version, shadow_of(m.version, now=now, maturity=maturity, per_hour=True))
        for m in models
        if m.role == Deployment.Role.SHADOW
    ]
    return render(
        request,
        "ml/models.html",
        {
            "models": models,
            "total": total,
            "champion": champion_get(),
            "bandit": bandit,
            "arms": list(bandit.arms.order_by("id")) if bandit else [],
            "history": role_history(),
            "shadows": shadows,
            "shadow_chart": {
                version: [
                    {k: v for k, v in hour.items() if k not in ("report", "start")}
                    for hour in report.get("per_hour", [])
                ]
                for version, report in shadows
            },
            "predecessors": previous_champions({d.model_version: d for d in deployments_active()}),
            "can_manage": can_manage_models(request.user),
            "now": timezone.now(),
        },
    )


@require_POST
@models_manager_required
def bandit_start_view(request: HttpRequest) -> HttpResponse:
    """Start a bandit between the champion and the checked candidates."""
    candidates = request.POST.getlist("candidate")
    try:
        experiment = bandit_start(candidates=candidates)
    except ExperimentRefused as exc:
        messages.error(request, f"No bandit started: {exc}.")
    else:
        messages.success(
            request,
            f"Bandit {experiment.pk} started: {len(candidates)} candidate"
            f"{'s' if len(candidates) > 1 else ''} against the champion, each deciding for an "
            "equal share of cards to begin with.",
        )
    return redirect("ml:models")


@require_POST
@models_manager_required
def bandit_stop_view(request: HttpRequest) -> HttpResponse:
    """Stop the running bandit; its candidates are retired, the champion stays."""
    try:
        experiment = bandit_stop(note=f"stopped by {request.user.get_username()}")
    except ExperimentRefused as exc:
        messages.error(request, f"Nothing stopped: {exc}.")
    else:
        messages.success(request, f"Bandit {experiment.pk} stopped; the champion decides alone.")
    return redirect("ml:models")


@require_POST
@models_manager_required
def model_deploy_view(request: HttpRequest, version: str) -> HttpResponse:
    """Promote model ``version`` to champion, deploy it as a shadow or a canary beside the
    champion (at the champion's thresholds), or retire it."""
    action = request.POST.get("action", "")
    who = request.user.get_username()
    deployed = {d.model_version: d for d in deployments_active()}
    if action == "retire":
        deployment = deployed.get(version)
        if deployment is None:
            messages.error(request, f"{version} is not deployed.")
        elif deployment.role == Deployment.Role.CHAMPION:
            messages.error(request, "The champion is not retired: promote another model instead.")
        else:
            deployment_retire(deployment=deployment, reason=f"retired by {who}")
            messages.success(request, f"{version} retired; the champion decides for its cards.")
        return redirect("ml:models")
    current = deployment_champion()
    if action in ("shadow", "canary"):
        model = ModelVersion.objects.filter(version=version).first()
        service = FEATURE_SERVICES.get(model.feature_service) if model else None
        if service is not None and service.checkpoint != AUTHORIZATION:
            messages.error(
                request,
                f"{version} scores the {service.checkpoint} checkpoint: beside its champion only "
                "as its champion (promote it); shadows and canaries serve the authorization.",
            )
            return redirect("ml:models")
        return _deploy_beside(request, version, action, current, who)
    if action != "promote":
        messages.error(request, "Say promote, shadow, canary or retire.")
        return redirect("ml:models")
    try:
        model_promote(version=version, reason=f"promoted by {who}")
    except ModelVersion.DoesNotExist:
        messages.error(request, f"No model version {version}.")
    except (ModelRejected, ModelRefused) as exc:
        messages.error(request, f"{version} was not promoted: {exc}")
    else:
        messages.success(request, f"{version} is the champion; scorers load it within seconds.")
    return redirect("ml:models")


def _deploy_beside(
    request: HttpRequest, version: str, role: str, champion: Deployment | None, who: str
) -> HttpResponse:
    """Deploy ``version`` as a shadow or a canary (its share from the form) beside the
    champion, at the champion's thresholds."""
    if champion is None:
        messages.error(request, "There is no champion to run a model beside.")
        return redirect("ml:models")
    share = 0.0
    if role == "canary":
        try:
            share = float(request.POST.get("share", ""))
        except ValueError:
            share = -1.0
        if not 0 < share <= MAX_CANARY_SHARE:
            messages.error(
                request, f"A canary's share is above 0 and at most {MAX_CANARY_SHARE:.0%}."
            )
            return redirect("ml:models")
    try:
        model_promote(
            version=version,
            role=role,
            canary_share=share,
            reason=f"{role} by {who}",
        )
    except ModelVersion.DoesNotExist:
        messages.error(request, f"No model version {version}.")
    except (ModelRejected, ModelRefused) as exc:
        messages.error(request, f"{version} was not deployed: {exc}")
    else:
        what = f"a canary deciding for {share:.0%} of cards" if role == "canary" else "a shadow"
        messages.success(request, f"{version} is {what}; scorers load it within seconds.")
    return redirect("ml:models")


@require_GET
@models_viewer_required
def model_page(request: HttpRequest, version: str) -> HttpResponse:
    """Show one model: its lineage, what it learned from and why it was trained, its holdout
    figures, its gates with their figures, the inputs it leans on and its role history."""
    model = get_object_or_404(ModelVersion.objects.select_related("parent"), version=version)
    training = model_training(model)
    importances = []
    try:
        booster = model_load(model.version)
    except (ModelRefused, OSError) as exc:
        importances_error = str(exc)
    else:
        importances_error = ""
        gains = booster.feature_importance(importance_type="gain")
        total = float(gains.sum()) or 1.0
        ranked = sorted(zip(booster.feature_name(), gains, strict=True), key=lambda p: -p[1])
        importances = [(name, float(gain) / total) for name, gain in ranked if gain > 0][:20]
    return render(
        request,
        "ml/model.html",
        {
            "model": model,
            "lineage": model_lineage(model),
            "training": training,
            "firing": training.firings.filter(started=True).first() if training else None,
            "importances": importances,
            "importances_error": importances_error,
            "history": model_history(model.version),
            "now": timezone.now(),
        },
    )
