"""Money for people, shared by every room's pages and words: integer cents as ``€20.14``."""

from __future__ import annotations

from decimal import Decimal

CURRENCY_SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£"}


def money_text(cents: int | float, currency: str = "EUR") -> str:
    """Return ``cents`` of ``currency`` as money: ``€20.14``, ``-€3.00``, ``12.50 CHF`` (a
    currency without a symbol here); fractions of a cent (an average) are rounded."""
    sign = "-" if cents < 0 else ""
    amount = f"{Decimal(abs(cents)) / 100:,.2f}"
    symbol = CURRENCY_SYMBOLS.get(currency)
    return f"{sign}{symbol}{amount}" if symbol else f"{sign}{amount} {currency}"
