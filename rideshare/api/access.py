"""Who the authenticated caller is on the booking side: a rider or a driver, else 403."""

from __future__ import annotations

from django.http import HttpRequest
from ninja.errors import AuthorizationError

from rideshare import selectors
from rideshare.models import Driver, Rider


def rider_of(request: HttpRequest) -> Rider:
    """Return the caller's rider profile; 403 when the caller is not a rider."""
    rider = selectors.rider_of_user(request.auth)
    if rider is None:
        raise AuthorizationError(message="This account is not a rider.")
    return rider


def driver_of(request: HttpRequest) -> Driver:
    """Return the caller's driver profile; 403 when the caller is not a driver."""
    driver = selectors.driver_of_user(request.auth)
    if driver is None:
        raise AuthorizationError(message="This account is not a driver.")
    return driver
