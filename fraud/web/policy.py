"""The lists and rules pages: analysts list cards, riders, devices, IPs and drivers, and write
rules with a backtest beside them before they go live. Thin: parse, call a service, render;
refused input answers 422 with each field's reason (a rule's error points at its place)."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from fraud.access import analyst_required
from fraud.backtest import rule_backtest
from fraud.models import ListEntry, Rule
from fraud.services.policy import (
    PolicyInvalid,
    list_entry_add,
    list_entry_remove,
    rule_check,
    rule_mode_set,
    rule_save,
)

BACKTEST_DAYS = (1, 7, 30)


def _lists_page(request: HttpRequest, *, errors=None, form=None, status=200) -> HttpResponse:
    kind = request.GET.get("kind", "")
    entries = ListEntry.objects.filter(removed_at__isnull=True).select_related("author")
    if kind in ListEntry.Kind.values:
        entries = entries.filter(kind=kind)
    return render(
        request,
        "fraud/lists.html",
        {
            "entries": list(entries.order_by("-created_at")[:500]),
            "total": entries.count(),
            "kind": kind,
            "kinds": ListEntry.Kind.choices,
            "actions": ListEntry.Action.choices,
            "stages": ListEntry.Stage.choices,
            "errors": errors or {},
            "form": form or {},
            "now": timezone.now(),
        },
        status=status,
    )


@require_http_methods(["GET", "POST"])
@analyst_required
def lists(request: HttpRequest) -> HttpResponse:
    """Show the live list entries; POST adds one."""
    if request.method == "GET":
        return _lists_page(request)
    form = request.POST
    expires_at = None
    if form.get("expires_in_days"):
        try:
            expires_at = timezone.now() + timedelta(days=float(form["expires_in_days"]))
        except ValueError:
            return _lists_page(
                request, errors={"expires_at": "Give the expiry in days."}, form=form, status=422
            )
    try:
        entry = list_entry_add(
            kind=form.get("kind", ""),
            value=form.get("value", ""),
            action=form.get("action", ""),
            stage=form.get("stage", ListEntry.Stage.BEFORE),
            reason=form.get("reason", ""),
            author=request.user,
            expires_at=expires_at,
        )
    except PolicyInvalid as exc:
        return _lists_page(request, errors=exc.errors, form=form, status=422)
    messages.success(
        request, f"{entry.get_kind_display()} {entry.value} is on the {entry.action} list."
    )
    return redirect("fraud:lists")


@require_POST
@analyst_required
def list_remove(request: HttpRequest, entry_id: int) -> HttpResponse:
    entry = list_entry_remove(entry=get_object_or_404(ListEntry, pk=entry_id))
    messages.success(request, f"{entry.get_kind_display()} {entry.value} is off its list.")
    return redirect("fraud:lists")


def _days(raw: str | None) -> float:
    try:
        days = float(raw or 7)
    except ValueError:
        return 7.0
    return min(max(days, 1 / 24), 90.0)


def _rules_page(request: HttpRequest, *, status=200, **extra) -> HttpResponse:
    context = {
        "rules": list(Rule.objects.order_by("mode", "priority", "name")),
        "actions": Rule.Action.choices,
        "modes": Rule.Mode.choices,
        "days_choices": BACKTEST_DAYS,
        "form": {},
        "errors": {},
        "backtest": None,
        "backtested": None,
        "days": 7.0,
    }
    context.update(extra)
    return render(request, "fraud/rules.html", context, status=status)


@require_GET
@analyst_required
def rules(request: HttpRequest) -> HttpResponse:
    """Show the rules; ``?backtest=<id>&days=N`` backtests one of them beside the list."""
    days = _days(request.GET.get("days"))
    chosen = request.GET.get("backtest")
    if chosen and chosen.isdigit():
        rule = get_object_or_404(Rule, pk=int(chosen))
        result = rule_backtest(
            rule=rule_check(rule.expression), action=rule.action, until=timezone.now(), days=days
        )
        return _rules_page(request, backtest=result, backtested=rule, days=days)
    return _rules_page(request, days=days)


@require_POST
@analyst_required
def rule_write(request: HttpRequest) -> HttpResponse:
    """Backtest the posted rule (``do=backtest``) or save it (``do=save``, new rules in shadow
    unless told); a bad expression is answered 422 with where it is wrong."""
    form = request.POST
    days = _days(form.get("days"))
    try:
        priority = int(form.get("priority") or 100)
    except ValueError:
        priority = -1
    if form.get("do") == "backtest":
        try:
            compiled = rule_check(form.get("expression", ""))
        except PolicyInvalid as exc:
            return _rules_page(
                request, form=form, errors=exc.errors, position=exc.position, days=days,
                status=422,
            )  # fmt: skip
        result = rule_backtest(
            rule=compiled, action=form.get("action", "review"), until=timezone.now(), days=days
        )
        return _rules_page(request, form=form, backtest=result, days=days)
    try:
        rule = rule_save(
            name=form.get("name", ""),
            expression=form.get("expression", ""),
            action=form.get("action", ""),
            priority=priority,
            mode=form.get("mode", Rule.Mode.SHADOW),
            author=request.user,
        )
    except PolicyInvalid as exc:
        return _rules_page(
            request, form=form, errors=exc.errors, position=exc.position, days=days, status=422
        )
    messages.success(request, f"Rule {rule.name!r} saved ({rule.get_mode_display().lower()}).")
    return redirect("fraud:rules")


@require_POST
@analyst_required
def rule_mode(request: HttpRequest, rule_id: int) -> HttpResponse:
    rule = get_object_or_404(Rule, pk=rule_id)
    try:
        rule_mode_set(rule=rule, mode=request.POST.get("mode", ""))
    except PolicyInvalid as exc:
        messages.error(request, exc.errors["mode"])
    else:
        messages.success(request, f"Rule {rule.name!r} is now {rule.get_mode_display().lower()}.")
    return redirect("fraud:rules")
