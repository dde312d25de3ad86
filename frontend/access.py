"""Who may open a page: the staff-only gate shared by every room's staff pages, and the gate
of the Prometheus endpoints."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden

View = Callable[..., HttpResponse]


def staff_required(denied: str) -> Callable[[View], View]:
    """Return a view decorator: log in first; then 403 for anyone who is not staff, the 403 page
    saying ``denied``."""

    def decorator(view: View) -> View:
        @login_required
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.is_staff:
                raise PermissionDenied(denied)
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


# Addresses a scrape without a token is accepted from: this host.
LOOPBACK = frozenset({"127.0.0.1", "::1"})


def metrics_access(view: View) -> View:
    """Guard a Prometheus endpoint: with ``METRICS_TOKEN`` set, a scrape must send it
    (``Authorization: Bearer <token>``, compared in constant time; 401 without it); without a
    token only this host may scrape (403 for any other address), and never behind a TLS proxy,
    where every request arrives from the proxy's address (403 saying to set the token)."""

    @wraps(view)
    def guarded(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        token = settings.METRICS_TOKEN
        if token:
            sent = request.headers.get("Authorization", "")
            if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
                answer = HttpResponse("A metrics token is required.\n", status=401)
                answer["WWW-Authenticate"] = 'Bearer realm="metrics"'
                return answer
        elif getattr(settings, "SECURE_PROXY_SSL_HEADER", None):
            return HttpResponseForbidden("Behind a proxy, set METRICS_TOKEN to scrape.\n")
        elif request.META.get("REMOTE_ADDR") not in LOOPBACK:
            return HttpResponseForbidden("Metrics are served to this host only.\n")
        return view(request, *args, **kwargs)

    return guarded
