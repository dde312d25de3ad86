"""The live dashboard: the page, and its figures as JSON (``fraud.dashboard``)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from fraud.access import analyst_required
from fraud.dashboard import PRECISION_K, dashboard_snapshot
from fraud.routing import FLAGS_SOCKET_PATH


@require_GET
@analyst_required
def dashboard(request: HttpRequest) -> HttpResponse:
    snapshot = dashboard_snapshot(now=timezone.now())
    return render(
        request,
        "fraud/dashboard.html",
        {
            "snapshot": snapshot.as_json(),
            "socket_path": FLAGS_SOCKET_PATH,
            "k": PRECISION_K,
        },
    )


@require_GET
@analyst_required
def dashboard_data(request: HttpRequest) -> JsonResponse:
    return JsonResponse(dashboard_snapshot(now=timezone.now()).as_json())
