"""Answers that work for htmx requests and plain browser requests alike."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect


def is_htmx(request: HttpRequest) -> bool:
    """Return whether ``request`` was sent by htmx (it then expects a fragment)."""
    return request.headers.get("HX-Request") == "true"


def redirect_page(request: HttpRequest, url: str) -> HttpResponse:
    """Send the browser to ``url``: a whole-page navigation even from an htmx request."""
    if is_htmx(request):
        response = HttpResponse(status=200)
        response["HX-Redirect"] = url
        return response
    return HttpResponseRedirect(url)
