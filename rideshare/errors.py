"""Errors the booking services raise. Each carries a stable ``code`` and a readable message.

A service raising one of these has written nothing (its transaction rolled back), except
``CardDeclined``: the declined payment is kept on purpose, as the fraud side needs it.
"""

from __future__ import annotations


class DomainError(Exception):
    code = "domain_error"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def details(self) -> dict:
        """Return extra machine-readable fields for an API error body."""
        return {}


class InvalidInput(DomainError):
    """Inputs failed business rules; ``errors`` maps each input at fault to its message."""

    code = "invalid"

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))
        self.errors = errors


class IllegalTransition(DomainError):
    """The trip's current status does not allow the requested step."""

    code = "illegal_transition"

    def __init__(self, message: str, *, status: str):
        super().__init__(message)
        self.status = status

    def details(self) -> dict:
        return {"status": self.status}


class DriverUnavailable(DomainError):
    """The driver is offline or already on a trip."""

    code = "driver_unavailable"


class NotTripDriver(DomainError):
    """A driver acted on a trip assigned to another driver."""

    code = "not_trip_driver"


class NotPermitted(DomainError):
    """The acting user may not perform this operation (e.g. a refund by a non-staff user)."""

    code = "not_permitted"


class CancellationFeeUnconfirmed(DomainError):
    """A fee applies to this cancellation and the rider did not confirm that exact amount."""

    code = "cancellation_fee_unconfirmed"

    def __init__(self, message: str, *, fee_cents: int, currency: str):
        super().__init__(message)
        self.fee_cents = fee_cents
        self.currency = currency

    def details(self) -> dict:
        return {"fee_cents": self.fee_cents, "currency": self.currency}


class CardDeclined(DomainError):
    """The processor declined the authorisation; the declined payment row was kept."""

    code = "card_declined"

    def __init__(self, message: str, *, decline_code: str, trip_id: str, payment_id: str):
        super().__init__(message)
        self.decline_code = decline_code
        self.trip_id = trip_id
        self.payment_id = payment_id

    def details(self) -> dict:
        return {
            "decline_code": self.decline_code,
            "trip_id": self.trip_id,
            "payment_id": self.payment_id,
        }


class PaymentStateError(DomainError):
    """A payment operation (capture, void, refund) does not fit the payment's state."""

    code = "payment_state"


class UnknownPayment(DomainError):
    """A verdict names a payment the booking never made (``rideshare.services.verdicts``)."""

    code = "unknown_payment"


class NotBookedHere(UnknownPayment):
    """A well-formed payment id with no payment here: another producer's payment on the stream
    (the simulator's load and live modes, a replay), whose verdict the booking has nothing to
    act on. Not an error of the verdict: its consumer passes it over."""
