"""What the feature commands' arguments mean: a duration (``6h``) and an instant (ISO 8601), one
parser each, so every command reads a time the same way."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([dhms])")
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def duration_parse(text: str) -> timedelta:
    """Return the duration ``text`` names: ``1d``, ``6h``, ``30m``, ``45s`` (decimals allowed);
    raise ``ValueError`` otherwise."""
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise ValueError(f"not a duration: {text!r} (examples: 1d, 6h, 30m)")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def instant_parse(text: str) -> datetime:
    """Return the instant ``text`` names: an ISO 8601 date-time, UTC unless it says otherwise
    (as the simulator reads its times); raise ``ValueError`` otherwise."""
    moment = datetime.fromisoformat(text.strip())
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
