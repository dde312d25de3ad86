"""The answer to a login refused by django-axes (too many failures for one username from one
address): 429 with ``Retry-After``, as JSON in the API's error shape on ``/api/``, else a page a
person can read."""

from __future__ import annotations

import math
from typing import Any

from axes.helpers import get_cool_off
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

STATUS = 429


def lockout_response(
    request: HttpRequest, response: HttpResponse | None = None, credentials: Any = None
) -> HttpResponse:
    """``AXES_LOCKOUT_CALLABLE``: ``response`` (what the view answered) and ``credentials`` are
    not needed."""
    cool_off = get_cool_off(request)
    seconds = math.ceil(cool_off.total_seconds()) if cool_off else None
    minutes = math.ceil(seconds / 60) if seconds else None
    wait = f"Try again in {minutes} minute{'s' if minutes != 1 else ''}." if minutes else ""
    detail = f"Too many failed sign-ins for this account from your address. {wait}".strip()
    if request.path.startswith("/api/"):
        answer: HttpResponse = JsonResponse({"code": "locked_out", "detail": detail}, status=STATUS)
        if seconds:
            answer["Retry-After"] = str(seconds)
        return answer
    return too_many_page(request, detail, seconds)


def too_many_page(request: HttpRequest, detail: str, seconds: int | None) -> HttpResponse:
    """The page telling a person they tried too often (``detail``): 429, with ``Retry-After``
    when it is known when they may try again. A lockout's and a rate limit's alike."""
    answer = render(request, "locked_out.html", {"detail": detail}, status=STATUS)
    if seconds:
        answer["Retry-After"] = str(seconds)
    return answer
