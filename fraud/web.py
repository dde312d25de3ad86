"""The analyst page: flagged payments, newest first, live over a websocket."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from fraud import live
from fraud.routing import FLAGS_SOCKET_PATH


def staff_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Log in first; then 403 for anyone who is not staff."""

    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_staff:
            raise PermissionDenied("The fraud desk is for staff only.")
        return view(request, *args, **kwargs)

    return wrapped


@staff_required
@require_GET
def flags(request: HttpRequest) -> HttpResponse:
    recent = live.flags_recent()
    return render(
        request,
        "fraud/flags.html",
        {
            "flags": recent,
            "last_id": recent[0].id if recent else 0,
            "socket_path": FLAGS_SOCKET_PATH,
            "page_size": live.PAGE_SIZE,
        },
    )
