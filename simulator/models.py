"""The simulator's own record: its runs and the ground truth of what it sent.

The app's consumers never read these tables: they learn fraud only from labels on the stream.
Evaluation and training jobs may join on ``GroundTruth`` to measure what the labels miss.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class SimulationRun(models.Model):
    class Mode(models.TextChoices):
        LOAD = "load"
        END_TO_END = "end-to-end"
        REPLAY = "replay"
        LIVE = "live"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        FINISHED = "finished"
        STOPPED = "stopped"
        FAILED = "failed"

    mode = models.CharField(max_length=16, choices=Mode.choices)
    params = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    # Updated while the run goes: events by type, fraud by scenario, rates, lag, errors.
    counters = models.JSONField(default=dict)
    events_published = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    stop_requested = models.BooleanField(default=False)
    error_message = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"simulation {self.pk} ({self.mode}, {self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING)


class GroundTruth(models.Model):
    """Whether an event the simulator sent was fraud, and in which scenario.

    One row per payment (authorised or declined), chargeback and fraud-scenario event; the
    end-to-end mode, which never sees the app's event ids, records trips (``event_id`` null).
    """

    run = models.ForeignKey(
        SimulationRun, on_delete=models.CASCADE, related_name="ground_truth", null=True
    )
    event_id = models.UUIDField(unique=True, null=True, blank=True)
    topic = models.CharField(max_length=128, blank=True)
    occurred_at = models.DateTimeField()
    payment_id = models.CharField(max_length=64, blank=True, db_index=True)
    trip_id = models.CharField(max_length=64, blank=True, db_index=True)
    card_id = models.CharField(max_length=64, blank=True)
    rider_id = models.CharField(max_length=64, blank=True)
    is_fraud = models.BooleanField()
    scenario = models.CharField(max_length=32, blank=True)
    incident_id = models.CharField(max_length=64, blank=True)

    def __str__(self) -> str:
        what = self.scenario if self.is_fraud else "legitimate"
        return f"{self.topic or 'trip'} {self.event_id or self.trip_id}: {what}"
