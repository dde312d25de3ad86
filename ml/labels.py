"""What a payment's label is, from the label evidence that has arrived for it (pure: no Django).

Two sources label payments, late and sometimes against each other:

- a **chargeback** (``labels.chargeback_filed.v1``): the cardholder's bank disputes the payment,
  days to weeks after it, for any payment; a reason code in the card networks' fraud category
  (Visa 10.x, ``FRAUD_REASON_CATEGORY``) says fraud, another one ("services not received")
  says the dispute is about something else;
- an **analyst's decision** (``reviews.decided.v1``): minutes to hours after the payment, only
  for the payments the scorer sent for review. A review closed by the expiry policy is no label:
  nobody looked at it.

The rule (``resolve``), in order:

1. A fraud chargeback makes the payment fraud, whatever an analyst said: the bank has the
   cardholder's word, the analyst only the payment's signals. The earliest one decides (when
   the label became known).
2. Else the latest analyst decision stands: an analyst may reverse an earlier decision, and the
   later word is the considered one.
3. Else a chargeback for another reason makes it legitimate (disputed, but not as fraud).

A payment without evidence has no label; whether it may be assumed legitimate depends on how
old it is (``ml.datasets``: label maturity).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby

import pandas as pd

# The fraud category is a fact of the chargeback's contract; kept importable from here.
from events.contracts import FRAUD_REASON_CATEGORY, chargeback_is_fraud

__all__ = ["FRAUD_REASON_CATEGORY", "chargeback_is_fraud"]
CHARGEBACK = "chargeback"
REVIEW = "review"
# A training row's label source when no label came (``ml.datasets``).
ASSUMED_NEGATIVE = "assumed_negative"
LABEL_COLUMNS = ["payment_id", "label", "label_source", "labelled_at", "contradicted"]


@dataclass(frozen=True)
class Evidence:
    """One label event: ``source`` (``chargeback`` or ``review``), whether it says fraud,
    ``detail`` (the chargeback's reason code or the review's outcome), ``known_at`` (the event's
    ``occurred_at``: when the label became known) and its ``event_id`` (ties)."""

    source: str
    fraud: bool
    detail: str
    known_at: datetime
    event_id: str


@dataclass(frozen=True)
class Resolved:
    """A payment's label: ``fraud``, the ``source`` and ``known_at`` of the evidence that
    decided it, and whether any evidence said otherwise (``contradicted``)."""

    fraud: bool
    source: str
    known_at: datetime
    contradicted: bool


def chargeback_evidence(*, reason_code: str, known_at: datetime, event_id: str) -> Evidence:
    """Return a chargeback event's evidence (fraud when its reason is in the fraud category)."""
    return Evidence(
        source=CHARGEBACK,
        fraud=chargeback_is_fraud(reason_code),
        detail=reason_code,
        known_at=known_at,
        event_id=event_id,
    )


def review_evidence(
    *, decision: str, reason: str | None, known_at: datetime, event_id: str
) -> Evidence:
    """Return an analyst decision's evidence (fraud for ``confirmed_fraud``); its detail is how
    the review was closed, else the decision (older producers send no reason)."""
    return Evidence(
        source=REVIEW,
        fraud=decision == "confirmed_fraud",
        detail=reason or decision,
        known_at=known_at,
        event_id=event_id,
    )


def resolve(evidence: Iterable[Evidence]) -> Resolved | None:
    """Return the label the evidence gives its payment (the rule in this module's docstring),
    ``None`` for no evidence."""
    every = sorted(evidence, key=lambda e: (e.known_at, e.event_id))
    if not every:
        return None
    fraud_chargebacks = [e for e in every if e.source == CHARGEBACK and e.fraud]
    reviews = [e for e in every if e.source == REVIEW]
    if fraud_chargebacks:
        deciding = fraud_chargebacks[0]
    elif reviews:
        deciding = reviews[-1]
    else:
        deciding = every[0]
    return Resolved(
        fraud=deciding.fraud,
        source=deciding.source,
        known_at=deciding.known_at,
        contradicted=any(e.fraud != deciding.fraud for e in every),
    )


def resolved_frame(evidence: Iterable[tuple[str, Evidence]]) -> pd.DataFrame:
    """Return one row per payment of ``evidence`` (``(payment_id, Evidence)`` pairs, grouped
    by payment id, in any order within a payment): ``LABEL_COLUMNS``, ``label`` 1 for fraud,
    ``labelled_at`` when the deciding evidence became known (UTC)."""
    rows = []
    for payment_id, pairs in groupby(evidence, key=lambda pair: pair[0]):
        resolved = resolve(e for _, e in pairs)
        if resolved is not None:
            rows.append(
                (
                    payment_id,
                    int(resolved.fraud),
                    resolved.source,
                    resolved.known_at,
                    resolved.contradicted,
                )
            )
    return labels_table(rows)


def labels_table(rows: Iterable[tuple[str, int, str, datetime, bool]]) -> pd.DataFrame:
    """Return resolved labels (tuples in ``LABEL_COLUMNS`` order) as a frame of those columns,
    typed the same whether empty or not."""
    frame = pd.DataFrame(list(rows), columns=LABEL_COLUMNS)
    return frame.astype(
        {
            "payment_id": object,
            "label": int,
            "label_source": object,
            "labelled_at": "datetime64[us, UTC]",
            "contradicted": bool,
        }
    )
