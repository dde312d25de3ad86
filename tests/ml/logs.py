"""Served-feature logs with labels for the ml tests: payments logged as the scorer logs them,
their chargebacks recorded as the label-intake consumer records them."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

from events.contracts import ChargebackFiled
from features.definitions import FEATURE_SERVICES, FRAUD_SCORING_V1
from features.serving import ServedVector
from features.store import FeatureConfig
from features.training import service_features
from fraud.feature_log import LoggedVector, feature_log_write
from ml.handlers import handle_chargeback_filed

STORED = [name for name, _ in service_features(FRAUD_SCORING_V1)]
NOISY = ("card_payments_1h", "card_payments_24h", "rider_trips_24h", "card_amount_cents_24h")


def vector(
    fraud: bool, i: int, noise: random.Random | None = None, service: str = FRAUD_SCORING_V1.name
) -> ServedVector:
    """A served vector of ``service`` in which velocity separates fraud exactly; with
    ``noise``, one whose values are drawn at random (nothing to learn, so every tree keeps
    splitting: slow)."""
    declared = FEATURE_SERVICES[service]
    stored = [name for name, _ in service_features(declared)]
    values = dict.fromkeys(stored)
    # Within the ranges of the golden set's payments (ml/golden/), so a model trained on
    # these tells its payments apart and passes the offline gates.
    values.update(
        card_payments_1h=(3 + i % 3) if fraud else 1 + i % 2,
        card_payments_24h=(4 + i % 4) if fraud else 1 + i % 3,
        rider_trips_24h=i % 4,
    )
    if noise is not None:
        values.update({name: noise.randrange(50) for name in NOISY})
    statuses = {n: "PRESENT" if values[n] is not None else "NOT_FOUND" for n in stored}
    stamps = {n: None for n in stored}
    on_demand = dict.fromkeys(declared.on_demand)
    on_demand.update(hour_of_day=i % 24, is_new_card=int(fraud or i % 3 > 0))
    return ServedVector(values, statuses, stamps, on_demand)


def logs_with_labels(
    config: FeatureConfig,
    rows: int = 400,
    *,
    start: datetime | None = None,
    prefix: str = "p",
    noisy: bool = False,
    service: str = FRAUD_SCORING_V1.name,
) -> None:
    """Log ``rows`` payments scored with ``service`` a minute apart from ``start`` (default a
    week ago), every fifth fraud and charged back two days after it; ``noisy``: their values
    at random. A capture service's requests name a driver."""
    start = start or datetime.now(UTC) - timedelta(days=7)
    noise = random.Random(7) if noisy else None
    entries, chargebacks = [], []
    for i in range(rows):
        fraud = i % 5 == 0
        at = start + timedelta(minutes=i)
        request = {"payment_id": f"{prefix}{i}", "card_id": f"c{i}", "rider_id": "r1"}
        if FEATURE_SERVICES[service].checkpoint == "capture":
            request["driver_id"] = f"d{i % 7}"
        entries.append(
            LoggedVector(
                str(uuid.uuid4()), at, "boot", "champion", vector(fraud, i, noise, service),
                request,
            )
        )  # fmt: skip
        if fraud:
            chargebacks.append(
                ChargebackFiled(
                    chargeback_id=f"cb-{prefix}{i}",
                    payment_id=f"{prefix}{i}",
                    card_id=f"c{i}",
                    rider_id="r1",
                    amount_cents=100,
                    reason_code="10.4",
                    occurred_at=at + timedelta(days=2),
                )
            )
    for k in range(0, rows, 100):
        feature_log_write(config, entries[k : k + 100], service)
    for chargeback in chargebacks:
        handle_chargeback_filed(chargeback)  # as the label-intake consumer does
