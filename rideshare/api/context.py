"""The device an API caller acts from: its ``X-Device-Id`` header, required for rider actions."""

from __future__ import annotations

from django.http import HttpRequest

from events.contracts import RiderContext
from rideshare import request_context
from rideshare.api.schemas import plain_text
from rideshare.errors import DomainError
from rideshare.request_context import DEVICE_ID_MAX

DEVICE_HEADER = "X-Device-Id"


class DeviceIdRequired(DomainError):
    code = "device_id_required"


def rider_context(
    request: HttpRequest, *, lat: float | None = None, lng: float | None = None
) -> RiderContext:
    """Return the ``RiderContext`` of a rider action made through the API.

    The device id comes from the ``X-Device-Id`` header (required: ``DeviceIdRequired`` when it
    is missing, blank, longer than 64 characters or not plain text); the rest as
    ``request_context`` reads it.
    """
    device_id = request.headers.get(DEVICE_HEADER, "").strip()
    if not device_id:
        raise DeviceIdRequired(f"The {DEVICE_HEADER} header is required for rider actions.")
    if len(device_id) > DEVICE_ID_MAX:
        raise DeviceIdRequired(f"The {DEVICE_HEADER} header is over {DEVICE_ID_MAX} characters.")
    if not plain_text(device_id):
        raise DeviceIdRequired(
            f"The {DEVICE_HEADER} header must be plain text, without control characters."
        )
    return request_context.rider_context(request, device_id=device_id, lat=lat, lng=lng)
