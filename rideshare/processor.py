"""The simulated card processor: the processor's side of tokenisation and charges.

It keeps its own vault (token -> how the card behaves) and its own charge ledger, so the booking
side holds only an opaque token. Stripe's published test numbers behave as Stripe documents them;
any other Luhn-valid number is approved:

==================== ===============================
4242 4242 4242 4242  always approved
4000 0000 0000 0002  declined, ``card_declined``
4000 0000 0000 9995  declined, ``insufficient_funds``
==================== ===============================

Calls run in the caller's database transaction, which a real processor's network calls would
not; for a simulation that keeps both ledgers consistent when the booking side rolls back.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.views.decorators.debug import sensitive_variables

from rideshare import cards
from rideshare.models import ProcessorCharge, ProcessorVault

Behaviour = ProcessorVault.Behaviour

TEST_NUMBERS: dict[str, str] = {
    "4242424242424242": Behaviour.APPROVE,
    "4000000000000002": Behaviour.CARD_DECLINED,
    "4000000000009995": Behaviour.INSUFFICIENT_FUNDS,
}


class ProcessorError(Exception):
    """The processor refused a request as malformed or out of sequence (not a decline)."""


@dataclass(frozen=True)
class AuthorizationResult:
    approved: bool
    auth_code: str = ""
    decline_code: str = ""


@sensitive_variables("number")
def tokenise(*, number: str, exp_month: int, exp_year: int) -> str:
    """Vault the card and return its token (``tok_`` and 32 hex digits).

    Raise ``ProcessorError`` when the number fails the Luhn check. The number is not kept:
    the vault records only how the card will behave.
    """
    if not cards.luhn_valid(number):
        raise ProcessorError("invalid card number")
    if not 1 <= exp_month <= 12:
        raise ProcessorError("invalid expiry month")
    behaviour = TEST_NUMBERS.get(cards.normalise(number), Behaviour.APPROVE)
    vault = ProcessorVault.objects.create(token=f"tok_{secrets.token_hex(16)}", behaviour=behaviour)
    return vault.token


def authorize(*, token: str, amount_cents: int) -> AuthorizationResult:
    """Hold ``amount_cents`` on the card behind ``token``; return approval or the decline code."""
    if amount_cents <= 0:
        raise ProcessorError("the amount must be positive")
    try:
        vault = ProcessorVault.objects.get(token=token)
    except ProcessorVault.DoesNotExist as exc:
        raise ProcessorError("unknown card token") from exc
    if vault.behaviour != Behaviour.APPROVE:
        return AuthorizationResult(approved=False, decline_code=vault.behaviour)
    charge = ProcessorCharge.objects.create(
        auth_code=f"auth_{secrets.token_hex(12)}",
        vault=vault,
        amount_cents=amount_cents,
        status=ProcessorCharge.Status.AUTHORIZED,
    )
    return AuthorizationResult(approved=True, auth_code=charge.auth_code)


def _charge(auth_code: str) -> ProcessorCharge:
    try:
        return ProcessorCharge.objects.select_for_update().get(auth_code=auth_code)
    except ProcessorCharge.DoesNotExist as exc:
        raise ProcessorError(f"unknown authorisation {auth_code!r}") from exc


def capture(*, auth_code: str, amount_cents: int) -> None:
    """Capture ``amount_cents`` (at most the amount held) and release the rest of the hold."""
    charge = _charge(auth_code)
    if charge.status != ProcessorCharge.Status.AUTHORIZED:
        raise ProcessorError(f"cannot capture a {charge.status} authorisation")
    if not 0 < amount_cents <= charge.amount_cents:
        raise ProcessorError(f"cannot capture {amount_cents} of {charge.amount_cents} held")
    charge.captured_cents = amount_cents
    charge.status = ProcessorCharge.Status.CAPTURED
    charge.save(update_fields=["captured_cents", "status"])


def void(*, auth_code: str) -> None:
    """Release the whole hold without charging anything."""
    charge = _charge(auth_code)
    if charge.status != ProcessorCharge.Status.AUTHORIZED:
        raise ProcessorError(f"cannot void a {charge.status} authorisation")
    charge.status = ProcessorCharge.Status.VOIDED
    charge.save(update_fields=["status"])


def refund(*, auth_code: str, amount_cents: int) -> None:
    """Return ``amount_cents`` of a captured charge; refunds add up to at most the capture."""
    charge = _charge(auth_code)
    if charge.status != ProcessorCharge.Status.CAPTURED:
        raise ProcessorError(f"cannot refund a {charge.status} authorisation")
    if not 0 < amount_cents <= charge.captured_cents - charge.refunded_cents:
        raise ProcessorError(
            f"cannot refund {amount_cents}: {charge.captured_cents - charge.refunded_cents} left"
        )
    charge.refunded_cents += amount_cents
    charge.save(update_fields=["refunded_cents"])
