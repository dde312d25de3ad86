"""Stream handlers of the ml room: label intake (``manage.py consume label-intake``).

Applied once per event id by ``events.runner`` (its ``ProcessedEvent`` claim in the same
transaction as the label's write). Each label event becomes a piece of evidence for its payment
and the payment's label is resolved again (``ml.labels``: the rule for late and contradicting
labels).
"""

from __future__ import annotations

from events.contracts import ChargebackFiled, Event, PoisonMessage, ReviewDecided
from ml.labels import chargeback_evidence, review_evidence
from ml.services import label_record


def handle_event(event: Event) -> None:
    """Apply one event of the consumer's topics; raise ``PoisonMessage`` for another topic."""
    if isinstance(event, ChargebackFiled):
        handle_chargeback_filed(event)
    elif isinstance(event, ReviewDecided):
        handle_review_decided(event)
    else:
        raise PoisonMessage("schema", f"not a label: {event.topic}")


def handle_chargeback_filed(event: ChargebackFiled) -> None:
    label_record(
        payment_id=event.payment_id,
        evidence=chargeback_evidence(
            reason_code=event.reason_code, known_at=event.occurred_at, event_id=str(event.event_id)
        ),
    )


def handle_review_decided(event: ReviewDecided) -> None:
    if event.expired:
        return  # closed by the expiry policy: nobody looked, so no label
    label_record(
        payment_id=event.payment_id,
        evidence=review_evidence(
            decision=event.decision,
            reason=event.reason,
            known_at=event.occurred_at,
            event_id=str(event.event_id),
        ),
    )
