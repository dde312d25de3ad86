"""Card-number arithmetic: normalising, the Luhn check, brand detection and fingerprints.

Pure functions: no database, no settings, no logging. A full card number passes through here
and through the processor's tokenisation, and is never stored, logged, rendered or published.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import date

MIN_DIGITS = 12
MAX_DIGITS = 19

# Separators people type between digit groups.
_SEPARATORS = re.compile(r"[\s-]+")


def normalise(number: str) -> str:
    """Return ``number`` without spaces or dashes (the digits only, if it was well formed)."""
    return _SEPARATORS.sub("", number)


def is_well_formed(number: str) -> bool:
    """Return whether the normalised ``number`` is 12 to 19 ASCII digits."""
    return number.isascii() and number.isdigit() and MIN_DIGITS <= len(number) <= MAX_DIGITS


def luhn_valid(number: str) -> bool:
    """Return whether ``number`` (digits, separators allowed) passes the Luhn check."""
    digits = normalise(number)
    if not is_well_formed(digits):
        return False
    total = 0
    # From the rightmost digit (the check digit), double every second digit.
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def brand_of(number: str) -> str:
    """Return the card brand from the number's leading digits (IIN ranges).

    One of ``visa``, ``mastercard``, ``amex``, ``discover``, ``jcb``, ``diners`` or ``unknown``.
    """
    digits = normalise(number)
    if not digits.isdigit():
        return "unknown"
    two, four, six = int(digits[:2] or 0), int(digits[:4] or 0), int(digits[:6] or 0)
    if digits.startswith("4"):
        return "visa"
    if 51 <= two <= 55 or 222100 <= six <= 272099:
        return "mastercard"
    if two in (34, 37):
        return "amex"
    if four == 6011 or two == 65 or 644 <= int(digits[:3] or 0) <= 649:
        return "discover"
    if 3528 <= four <= 3589:
        return "jcb"
    if two in (36, 38, 39) or 300 <= int(digits[:3] or 0) <= 305:
        return "diners"
    return "unknown"


def fingerprint(number: str, *, key: str | bytes) -> str:
    """Return the HMAC-SHA256 of the normalised ``number`` under ``key``, as 64 hex characters.

    The same number gives the same fingerprint whoever adds it, so one card shared by several
    riders is recognisable without storing the number; without the key it cannot be reversed
    by enumerating card numbers.
    """
    secret = key.encode() if isinstance(key, str) else key
    return hmac.new(secret, normalise(number).encode(), hashlib.sha256).hexdigest()


def last4(number: str) -> str:
    """Return the last four digits of ``number``."""
    return normalise(number)[-4:]


def is_expired(*, exp_month: int, exp_year: int, today: date) -> bool:
    """Return whether a card expiring ``exp_month``/``exp_year`` has expired by ``today``.

    A card is valid through the last day of its expiry month.
    """
    return (exp_year, exp_month) < (today.year, today.month)
