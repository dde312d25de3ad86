"""Where a rider acted from, read off the request: device header, address, optional location."""

from __future__ import annotations

from django.http import HttpRequest

from events.contracts import RiderContext
from rideshare.errors import DomainError

DEVICE_HEADER = "X-Device-Id"
DEVICE_ID_MAX = 64
IP_MAX = 45


class DeviceIdRequired(DomainError):
    code = "device_id_required"


def rider_context(
    request: HttpRequest, *, lat: float | None = None, lng: float | None = None
) -> RiderContext:
    """Return the ``RiderContext`` of a rider action.

    The device id comes from the ``X-Device-Id`` header (required: ``DeviceIdRequired`` when it
    is missing, blank or longer than 64 characters), the address from ``REMOTE_ADDR`` (the web
    server's view of the peer; a proxy in front must set it from its trusted forwarded header).
    """
    device_id = request.headers.get(DEVICE_HEADER, "").strip()
    if not device_id:
        raise DeviceIdRequired(f"The {DEVICE_HEADER} header is required for rider actions.")
    if len(device_id) > DEVICE_ID_MAX:
        raise DeviceIdRequired(f"The {DEVICE_HEADER} header is over {DEVICE_ID_MAX} characters.")
    ip = (request.META.get("REMOTE_ADDR") or "unknown")[:IP_MAX]
    return RiderContext(device_id=device_id, ip=ip, lat=lat, lng=lng)
