"""Stream handlers of the booking: the fraud verdicts it acts on (``manage.py consume
booking-verdicts``; ``rideshare.services.verdicts`` says what each does).

Applied once per event id by ``events.runner`` (its ``ProcessedEvent`` claim in the same
transaction as the effect). The stream also carries payments the booking never made (the
simulator's load and live modes, replays): the verdict of a well-formed payment id with no
payment here is passed over (logged at debug level). One naming no payment id at all cannot
succeed on a retry: it goes to the dead-letter topic at once.
"""

from __future__ import annotations

import logging

from events.contracts import Event, FraudScored, PoisonMessage, ReviewDecided
from rideshare.errors import NotBookedHere, UnknownPayment
from rideshare.services.verdicts import (
    payment_capture_verdict_apply,
    payment_review_settle,
    payment_verdict_apply,
)

log = logging.getLogger(__name__)


def handle_event(event: Event) -> None:
    """Apply one event of the consumer's topics; pass over a payment not booked here; raise
    ``PoisonMessage`` for a malformed payment id or a topic it does not handle."""
    try:
        if isinstance(event, FraudScored):
            handle_fraud_scored(event)
        elif isinstance(event, ReviewDecided):
            handle_review_decided(event)
        else:
            raise PoisonMessage("schema", f"not a verdict: {event.topic}")
    except NotBookedHere as exc:
        log.debug("%s %s: %s", event.topic, event.event_id, exc.message)
    except UnknownPayment as exc:
        raise PoisonMessage(UnknownPayment.code, exc.message) from exc


def handle_fraud_scored(event: FraudScored) -> None:
    if event.checkpoint == "capture":
        payment_capture_verdict_apply(
            payment_id=event.payment_id, decision=event.decision, now=event.occurred_at
        )
        return
    payment_verdict_apply(
        payment_id=event.payment_id, decision=event.decision, now=event.occurred_at
    )


def handle_review_decided(event: ReviewDecided) -> None:
    # Older producers send no reason: the label alone says which way the money goes.
    outcome = event.reason or ("approved" if event.decision == "legitimate" else "confirmed_fraud")
    payment_review_settle(payment_id=event.payment_id, outcome=outcome, now=event.occurred_at)
