"""Write events to the transactional outbox; read its backlog."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from events.bulk import copy_insert
from events.contracts import Event
from events.models import OutboxEvent


class OutsideTransaction(RuntimeError):
    """``outbox_publish`` was called outside the transaction that writes the domain rows."""


def outbox_publish(event: Event) -> OutboxEvent:
    """Append ``event`` to the outbox inside the caller's open transaction.

    The event reaches the stream only if that transaction commits; the relay publishes it.
    """
    if not transaction.get_connection().in_atomic_block:
        raise OutsideTransaction(
            f"outbox_publish({event.topic}) must run inside transaction.atomic() with the write"
        )
    return OutboxEvent.objects.create(
        event_id=event.event_id,
        topic=event.topic,
        key=event.key(),
        payload=event.encode().decode(),
        occurred_at=event.occurred_at,
    )


def outbox_publish_many(events: Sequence[Event]) -> None:
    """Append ``events`` to the outbox, in order, inside the caller's open transaction: one
    INSERT for all of them (a consumer recording a batch), the relay publishing them in order.
    """
    if not transaction.get_connection().in_atomic_block:
        raise OutsideTransaction(
            "outbox_publish_many must run inside transaction.atomic() with the write"
        )
    copy_insert(
        OutboxEvent,
        [
            OutboxEvent(
                event_id=event.event_id,
                topic=event.topic,
                key=event.key(),
                payload=event.encode().decode(),
                occurred_at=event.occurred_at,
            )
            for event in events
        ],
    )


@dataclass(frozen=True)
class Backlog:
    events: int
    oldest_age_seconds: float


def outbox_backlog() -> Backlog:
    """Return how many events wait for the relay and the age of the oldest, in seconds."""
    pending = OutboxEvent.objects.filter(published_at__isnull=True)
    stats = pending.aggregate(oldest=Min("created_at"))
    count = pending.count()
    oldest = stats["oldest"]
    age = (timezone.now() - oldest).total_seconds() if oldest else 0.0
    return Backlog(events=count, oldest_age_seconds=max(age, 0.0))
