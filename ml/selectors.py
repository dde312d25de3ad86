"""Reads of the ml room: labels, model versions and what is deployed (through
``fraud.selectors``)."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from fraud.selectors import deployment_champion, deployment_champion_exists
from ml.labels import Evidence, labels_table, resolved_frame
from ml.models import Label, LabelEvidence, ModelVersion


def champion_get() -> ModelVersion | None:
    """Return the model version deployed as champion, ``None`` when there is none (or it was
    not registered here)."""
    deployment = deployment_champion()
    if deployment is None:
        return None
    return ModelVersion.objects.filter(version=deployment.model_version).first()


def champion_exists() -> bool:
    """Return whether any model is deployed as champion."""
    return deployment_champion_exists()


def labels_as_of(*, as_of: datetime | None = None) -> pd.DataFrame:
    """Return the payments' labels as they were known at ``as_of`` (``ml.labels.LABEL_COLUMNS``;
    default: now, the ``Label`` table as it stands): each payment's evidence known by then,
    resolved by the same rule, so a replayed or simulated clock sees what a live one did."""
    if as_of is None:
        rows = Label.objects.order_by("payment_id").values_list(
            "payment_id", "fraud", "source", "known_at", "contradicted"
        )
        return labels_table(
            (payment_id, int(fraud), source, known_at, contradicted)
            for payment_id, fraud, source, known_at, contradicted in rows.iterator(chunk_size=5000)
        )
    rows = (
        LabelEvidence.objects.filter(known_at__lte=as_of)
        .order_by("payment_id")
        .values_list("payment_id", "source", "fraud", "detail", "known_at", "event_id")
    )
    return resolved_frame(
        (
            payment_id,
            Evidence(
                source=source,
                fraud=fraud,
                detail=detail,
                known_at=known_at,
                event_id=str(event_id),
            ),
        )
        for payment_id, source, fraud, detail, known_at, event_id in rows.iterator(chunk_size=5000)
    )
