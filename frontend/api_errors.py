"""What the JSON APIs (the booking's, the fraud desk's) share in their error answers."""

from __future__ import annotations


def field_name(loc: tuple) -> str:
    """Name the field of a validation error's location as a caller wrote it.

    ``("body", "payload", "pickup", "lat")`` -> ``"pickup.lat"``: the first part after ``body``
    names the operation's body parameter, not a field; ``("path", "trip_id")`` -> ``"trip_id"``.
    """
    parts = [str(part) for part in loc[1:]]
    if loc and loc[0] == "body" and len(parts) > 1:
        parts = parts[1:]
    return ".".join(parts) or str(loc[0] if loc else "body")
