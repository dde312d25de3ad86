"""Endpoints of the card processor (not of riders): chargebacks filed against payments.

Authenticated by the processor's key (``PROCESSOR_API_KEY``, ``Authorization: Bearer``);
without a key configured the endpoints refuse every call (503), never accept one unchecked.
"""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from ninja import Field, Router, Schema, Status
from ninja.errors import HttpError
from ninja.security import HttpBearer

from rideshare.api.schemas import ErrorOut, Text
from rideshare.services.chargebacks import chargeback_file


class ProcessorKey(HttpBearer):
    """``Authorization: Bearer <PROCESSOR_API_KEY>``, compared in constant time."""

    def authenticate(self, request: HttpRequest, token: str) -> Any | None:
        expected = settings.PROCESSOR_API_KEY
        if not expected:
            raise HttpError(503, "The processor endpoints are not configured (PROCESSOR_API_KEY).")
        if hmac.compare_digest(token.encode(), expected.encode()):
            return "processor"
        return None


router = Router(tags=["processor"], auth=ProcessorKey())


class ChargebackIn(Schema):
    chargeback_id: Text = Field(min_length=1, max_length=64, description="the processor's id")
    payment_id: Text = Field(min_length=1, max_length=64)
    reason_code: Text = Field(min_length=1, max_length=16, description="e.g. 10.4 or 4837")
    amount_cents: int = Field(description="disputed amount, at most what was captured")
    filed_at: datetime = Field(description="when the cardholder's bank filed it (ISO 8601)")


class ChargebackOut(Schema):
    chargeback_id: str
    payment_id: str
    reason_code: str
    amount_cents: int
    filed_at: datetime
    received_at: datetime


@router.post(
    "/processor/chargebacks",
    response={200: ChargebackOut, 201: ChargebackOut, 404: ErrorOut, 422: ErrorOut},
    summary="File a chargeback",
)
def chargeback_create(request: HttpRequest, body: ChargebackIn):
    """Record a chargeback and publish it as a label (``labels.chargeback_filed.v1``).
    201 when new; 200 with the first record when ``chargeback_id`` was filed already (nothing
    published again); 404 for an unknown payment; 422 for a reason code no card network uses,
    an amount of nothing or more than was captured, or a date in the future."""
    chargeback, created = chargeback_file(
        processor_ref=body.chargeback_id,
        payment_id=body.payment_id,
        reason_code=body.reason_code,
        amount_cents=body.amount_cents,
        filed_at=body.filed_at,
    )
    return Status(
        201 if created else 200,
        {
            "chargeback_id": chargeback.processor_ref,
            "payment_id": str(chargeback.payment.public_id),
            "reason_code": chargeback.reason_code,
            "amount_cents": chargeback.amount_cents,
            "filed_at": chargeback.filed_at,
            "received_at": chargeback.received_at,
        },
    )
