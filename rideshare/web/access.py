"""Who the logged-in user is on the booking side; where each kind of user starts."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from rideshare import selectors

View = Callable[..., HttpResponse]


def rider_required(view: View) -> View:
    """Let only riders in: pass the rider to ``view`` as ``rider``; log in first, 403 if not one."""

    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        rider = selectors.rider_of_user(request.user)
        if rider is None:
            raise PermissionDenied("This account is not a rider: log in with a rider account.")
        return view(request, *args, rider=rider, **kwargs)

    return wrapped


def driver_required(view: View) -> View:
    """Let only drivers in: pass the driver to ``view`` as ``driver``; log in first, else 403."""

    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        driver = selectors.driver_of_user(request.user)
        if driver is None:
            raise PermissionDenied("This account is not a driver: log in with a driver account.")
        return view(request, *args, driver=driver, **kwargs)

    return wrapped


def start_page(user: AbstractBaseUser) -> str:
    """Return where ``user`` lands after logging in: booking, the driver console or the admin."""
    if selectors.rider_of_user(user) is not None:
        return reverse("book")
    if selectors.driver_of_user(user) is not None:
        return reverse("driver-console")
    if user.is_staff:
        return reverse("admin:index")
    return reverse("home")


def safe_next(request: HttpRequest, fallback: str) -> str:
    """Return the ``next`` URL of the request when it stays on this site, else ``fallback``."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return fallback
