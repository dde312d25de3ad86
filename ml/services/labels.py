"""Writes of the ml room's label intake: record a label event, resolve the payment's label."""

from __future__ import annotations

from django.db import transaction

from ml.labels import Evidence, resolve
from ml.models import Label, LabelEvidence


def label_record(*, payment_id: str, evidence: Evidence) -> Label:
    """Record one label event for ``payment_id`` and return the payment's label, resolved
    again from all its evidence (``ml.labels.resolve``). Idempotent on ``evidence.event_id``:
    an event recorded before changes nothing. Concurrent evidence for one payment is applied
    one at a time (the payment's label row is locked). Nothing is published."""
    with transaction.atomic():
        # The label row exists before it is locked, so two first labels of a payment queue on
        # the same row instead of both inserting it.
        Label.objects.bulk_create(
            [
                Label(
                    payment_id=payment_id,
                    fraud=evidence.fraud,
                    source=evidence.source,
                    known_at=evidence.known_at,
                    evidence=0,
                )
            ],
            ignore_conflicts=True,
        )
        label = Label.objects.select_for_update().get(payment_id=payment_id)
        _, created = LabelEvidence.objects.get_or_create(
            event_id=evidence.event_id,
            defaults={
                "payment_id": payment_id,
                "source": evidence.source,
                "fraud": evidence.fraud,
                "detail": evidence.detail[:32],
                "known_at": evidence.known_at,
            },
        )
        if not created and label.evidence:
            return label
        every = [row.as_evidence() for row in LabelEvidence.objects.filter(payment_id=payment_id)]
        resolved = resolve(every)
        assert resolved is not None  # the evidence just recorded, at least
        label.fraud = resolved.fraud
        label.source = resolved.source
        label.known_at = resolved.known_at
        label.contradicted = resolved.contradicted
        label.evidence = len(every)
        label.save()
        return label
