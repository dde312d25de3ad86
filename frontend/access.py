"""Who may open a page: the staff-only gate shared by every room's staff pages."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

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
