"""Who may work the fraud desk: analysts (the ``analyst`` group's ``fraud.review_payments``
permission; they need not be staff) and staff. Shared by the pages and the websocket."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

REVIEW_PERMISSION = "fraud.review_payments"
DENIED = "The fraud desk is for analysts and staff only."


def is_analyst(user) -> bool:
    """Return whether ``user`` may open the fraud desk's pages and decide reviews."""
    return bool(
        user is not None
        and user.is_authenticated
        and user.is_active
        and (user.is_staff or user.has_perm(REVIEW_PERMISSION))
    )


def analyst_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Log in first; then 403 (saying ``DENIED``) for anyone who is not an analyst."""

    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not is_analyst(request.user):
            raise PermissionDenied(DENIED)
        return view(request, *args, **kwargs)

    return wrapped
