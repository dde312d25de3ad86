"""Where a rider acted from, read off an HTTP request: device, network address, location.

The REST API names the device in its ``X-Device-Id`` header and the web UI in its device
cookie; both build the ``RiderContext`` here, so the fraud side reads the same fields whichever
way the rider came in.
"""

from __future__ import annotations

from django.http import HttpRequest

from events.contracts import RiderContext

DEVICE_ID_MAX = 64
IP_MAX = 45


def client_ip(request: HttpRequest) -> str:
    """Return the peer's address as the web server saw it (``REMOTE_ADDR``).

    A proxy in front must set ``REMOTE_ADDR`` from its trusted forwarded header: a header the
    client sends itself would let a fraudster choose the address the scorer sees.
    """
    return (request.META.get("REMOTE_ADDR") or "unknown")[:IP_MAX]


def rider_context(
    request: HttpRequest, *, device_id: str, lat: float | None = None, lng: float | None = None
) -> RiderContext:
    """Return the ``RiderContext`` of a rider action from an already validated ``device_id``."""
    return RiderContext(device_id=device_id, ip=client_ip(request), lat=lat, lng=lng)
