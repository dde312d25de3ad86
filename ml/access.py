"""Who may use the ML console: analysts read it (the models that decide their queue), ML
engineers (the ``ml_engineer`` group's ``ml.manage_models`` permission) and staff also act on
it (start and stop a bandit, promote, retire)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from fraud.access import is_analyst

MANAGE_PERMISSION = "ml.manage_models"
ML_ENGINEER_GROUP = "ml_engineer"
DENIED = "The model console is for ML engineers, analysts and staff only."
READ_ONLY = "Only ML engineers and staff may change what the models do."


def can_manage_models(user) -> bool:
    """Return whether ``user`` may deploy, compare and retire models."""
    return bool(
        user is not None
        and user.is_authenticated
        and user.is_active
        and (user.is_staff or user.has_perm(MANAGE_PERMISSION))
    )


def can_view_models(user) -> bool:
    """Return whether ``user`` may read the model console."""
    return can_manage_models(user) or is_analyst(user)


def _required(check: Callable, denied: str):
    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @login_required
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not check(request.user):
                raise PermissionDenied(denied)
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


models_viewer_required = _required(can_view_models, DENIED)
models_manager_required = _required(can_manage_models, READ_ONLY)
