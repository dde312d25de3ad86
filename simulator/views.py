"""The staff page: start a bounded load run as a Celery task, watch it, stop it."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from frontend.access import staff_required
from simulator import selectors, services
from simulator.forms import LoadRunForm
from simulator.models import SimulationRun

_staff_only = staff_required("The simulator is for staff only.")


@_staff_only
@require_http_methods(["GET", "POST"])
def runs(request: HttpRequest) -> HttpResponse:
    form = LoadRunForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        run = services.simulation_start(params=form.params(), created_by=request.user)
        messages.success(request, f"Simulation {run.pk} is queued; the worker starts it.")
        return redirect("simulator:runs")
    return render(
        request, "simulator/runs.html", {"form": form, "runs": selectors.simulation_runs()}
    )


@_staff_only
@require_GET
def runs_table(request: HttpRequest) -> HttpResponse:
    return render(request, "simulator/_runs_table.html", {"runs": selectors.simulation_runs()})


@_staff_only
@require_POST
def run_stop(request: HttpRequest, run_id: int) -> HttpResponse:
    run = services.simulation_stop(run=get_object_or_404(SimulationRun, pk=run_id))
    messages.info(request, f"Simulation {run.pk}: stop requested.")
    return redirect("simulator:runs")
