"""Template filters of the rider UI: money from integer cents, trip statuses in plain words."""

from __future__ import annotations

from django import template

from frontend.money import money_text

register = template.Library()

TRIP_STATUS_TEXT = {
    "requested": "Looking for a driver",
    "driver_assigned": "Driver on the way",
    "picked_up": "On the way to your drop-off",
    "completed": "Arrived",
    "cancelled": "Cancelled",
    "payment_declined": "Payment declined",
}


@register.filter
def money(cents: int | None, currency: str = "EUR") -> str:
    """Format integer ``cents`` of ``currency`` for people: ``2014|money:"EUR"`` is ``€20.14``."""
    if cents is None:
        return ""
    return money_text(cents, currency)


@register.filter
def trip_status(status: str) -> str:
    """Return the rider-facing words for a trip ``status``."""
    return TRIP_STATUS_TEXT.get(status, status.replace("_", " ").capitalize())


@register.filter
def delay(ms: float | None) -> str:
    """Return a delay of ``ms`` milliseconds in words: ``40 ms``, ``2.4 s``, ``3 min``, ``2 h``."""
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms:.0f} ms"
    seconds = ms / 1000
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h"
