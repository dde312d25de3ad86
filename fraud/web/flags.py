"""The analyst page: flagged payments, newest first, live over a websocket."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from fraud import live, selectors
from fraud.access import analyst_required
from fraud.routing import FLAGS_SOCKET_PATH


@analyst_required
@require_GET
def flags(request: HttpRequest) -> HttpResponse:
    recent = selectors.flags_recent(limit=live.PAGE_SIZE)
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
