from django.db import models
from django.db.models import Q


class OutboxEvent(models.Model):
    """An event written in the same transaction as the domain rows it describes.

    The relay publishes rows in ``id`` order and sets ``published_at`` only after the broker
    acknowledged the record.
    """

    event_id = models.UUIDField(unique=True)
    topic = models.CharField(max_length=128)
    key = models.CharField(max_length=128)
    payload = models.TextField()
    occurred_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        indexes = [
            models.Index(
                fields=["id"], name="outbox_unpublished", condition=Q(published_at__isnull=True)
            )
        ]

    def __str__(self) -> str:
        return f"{self.topic} {self.event_id}"


class ProcessedEvent(models.Model):
    """That consumer ``consumer`` has applied event ``event_id``: the idempotency record.

    Written in the same transaction as the handler's effects, so an event redelivered after a
    crash is recognised and skipped.
    """

    consumer = models.CharField(max_length=64)
    event_id = models.UUIDField()
    topic = models.CharField(max_length=128)
    partition = models.IntegerField()
    offset = models.BigIntegerField()
    processed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["consumer", "event_id"], name="processed_once")
        ]

    def __str__(self) -> str:
        return f"{self.consumer} applied {self.event_id}"


class LedgerEntry(models.Model):
    """One row per event seen on the stream by the ``event-ledger`` consumer (audit, reconcile)."""

    event_id = models.UUIDField(unique=True)
    topic = models.CharField(max_length=128)
    key = models.CharField(max_length=128)
    occurred_at = models.DateTimeField()
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["topic", "occurred_at"])]

    def __str__(self) -> str:
        return f"{self.topic} {self.event_id}"
