"""The browser's device id: a long-lived random cookie set on the first visit.

It plays for the web UI the part the ``X-Device-Id`` header plays for the API: the device the
fraud side sees in every rider event (``RiderContext.device_id``).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from events.contracts import RiderContext
from rideshare import request_context

DEVICE_COOKIE = "device_id"
DEVICE_COOKIE_MAX_AGE = 2 * 365 * 24 * 60 * 60  # seconds
_WELL_FORMED = re.compile(r"[A-Za-z0-9_-]{16,64}")


def rider_context(
    request: HttpRequest, *, lat: float | None = None, lng: float | None = None
) -> RiderContext:
    """Return the ``RiderContext`` of a rider action made in the browser (device: its cookie)."""
    return request_context.rider_context(request, device_id=request.device_id, lat=lat, lng=lng)


class DeviceCookieMiddleware:
    """Give every request a ``device_id``: the cookie's, or a new random one set on the page.

    A missing or malformed cookie is replaced, so a value a client made up is used only if it
    looks like one of ours. The cookie goes on HTML responses only, not on API answers.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        cookie = request.COOKIES.get(DEVICE_COOKIE, "")
        fresh = _WELL_FORMED.fullmatch(cookie) is None
        request.device_id = secrets.token_urlsafe(24) if fresh else cookie
        response = self.get_response(request)
        if fresh and response.get("Content-Type", "").startswith("text/html"):
            response.set_cookie(
                DEVICE_COOKIE,
                request.device_id,
                max_age=DEVICE_COOKIE_MAX_AGE,
                httponly=True,
                samesite="Lax",
                secure=settings.SESSION_COOKIE_SECURE,
            )
        return response
