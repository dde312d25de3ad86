"""Training sets: labels only from label events, each joined to its own payment, nothing later
than the label maturity; the log-based set holds the served values bit for bit."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta

import pandas as pd
import pyarrow.parquet as pq
import pytest

from events.contracts import ChargebackFiled, Event, PaymentAuthorized, ReviewDecided
from features.definitions import FRAUD_SCORING_V1, VIEWS_BY_NAME
from features.serving import online_vector
from features.store import feature_store
from features.training import service_features
from fraud.feature_log import LoggedVector, feature_log_write
from ml.datasets import history_end, history_events, labels, logged_dataset, payments_spine
from tests.features.stores import applied_store
from tests.ml.archive import archive_events
from tests.ml.history import MATURITY

# Builds training sets: fails alone if it grows (tests/memory_ceiling.py).
pytestmark = pytest.mark.memory_ceiling(2)

NAMES = [name for name, _ in service_features(FRAUD_SCORING_V1)] + list(FRAUD_SCORING_V1.on_demand)
AT = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)


def _chargeback(payment_id: str, reason: str, at: datetime, card_id: str = "c1") -> Event:
    return ChargebackFiled(
        chargeback_id=f"cb-{payment_id}-{reason}",
        payment_id=payment_id,
        card_id=card_id,
        rider_id="r1",
        amount_cents=1000,
        reason_code=reason,
        occurred_at=at,
    )


def _review(payment_id: str, decision: str, at: datetime, *, expired: bool = False) -> Event:
    return ReviewDecided(
        review_id=f"rv-{payment_id}",
        payment_id=payment_id,
        card_id="c1",
        rider_id="r1",
        decision=decision,
        analyst="ana",
        expired=expired,
        occurred_at=at,
    )


def _payment(payment_id: str, at: datetime, card_id: str = "c1", **extra) -> PaymentAuthorized:
    return PaymentAuthorized(
        payment_id=payment_id,
        trip_id=f"t-{payment_id}",
        rider_id="r1",
        card_id=card_id,
        amount_cents=2400,
        currency="EUR",
        card_fingerprint="fp",
        pickup_zone="Z-1",
        context={"device_id": "dev-1", "ip": "10.0.0.1"},
        distance_km=3.0,
        occurred_at=at,
        **extra,
    )


def test_labels_fraud_chargebacks_and_analyst_decisions_per_payment(tmp_path):
    t = datetime(2025, 3, 1, tzinfo=UTC)
    archive_events(
        tmp_path / "events",
        [
            _chargeback("p-fraud", "10.4", t),
            _chargeback("p-not-received", "13.1", t),
            _review("p-confirmed", "confirmed_fraud", t),
            _review("p-legit", "legitimate", t),
            # An analyst cleared it; the bank later says fraud: fraud wins.
            _review("p-both", "legitimate", t),
            _chargeback("p-both", "10.4", t + timedelta(days=3)),
            # Closed by the expiry policy: nobody looked, so no label.
            _review("p-expired", "legitimate", t, expired=True),
        ],
    )

    found = labels(tmp_path).set_index("payment_id")

    assert found[["label", "label_source"]].to_dict("index") == {
        "p-both": {"label": 1, "label_source": "chargeback"},
        "p-confirmed": {"label": 1, "label_source": "review"},
        "p-fraud": {"label": 1, "label_source": "chargeback"},
        "p-legit": {"label": 0, "label_source": "review"},
        "p-not-received": {"label": 0, "label_source": "chargeback"},
    }
    assert found.loc["p-both", "labelled_at"] == t + timedelta(days=3)


def test_bootstrap_labels_come_from_chargebacks_each_for_its_own_payment(bootstrapped):
    frame = bootstrapped.frame
    chargebacks = history_events(bootstrapped.history, "labels.chargeback_filed.v1")
    fraud = chargebacks[chargebacks["reason_code"].str.startswith("10.")].set_index("payment_id")

    positives = frame[frame["label"] == 1]
    assert set(positives["payment_id"]) == set(fraud.index) & set(frame["payment_id"])
    for row in positives.itertuples():
        chargeback = fraud.loc[row.payment_id]
        # The chargeback names the same payment's card and rider, and came after it.
        assert (chargeback["card_id"], chargeback["rider_id"]) == (row.card_id, row.rider_id)
        assert chargeback["occurred_at"] > row.event_timestamp
    # Every payment appears once.
    assert frame["payment_id"].is_unique
    assert frame["event_id"].is_unique


def test_bootstrap_rows_are_every_payment_old_enough_for_its_label(bootstrapped):
    payments = payments_spine(bootstrapped.history)
    end = history_end(bootstrapped.history)
    old_enough = payments[payments["event_timestamp"] <= end - MATURITY]

    assert len(bootstrapped.frame) == len(old_enough) == 1671
    assert bootstrapped.frame["event_timestamp"].max() <= end - MATURITY
    assert bootstrapped.frame["event_id"].tolist() == old_enough["event_id"].tolist()


def test_bootstrap_label_noise_against_the_simulators_ground_truth(bootstrapped):
    """The only reader of the ground truth: how noisy the chargeback labels are."""
    truth = pq.read_table(bootstrapped.truth).to_pandas()
    truth = truth[truth["topic"] == "payments.authorized.v1"][["payment_id", "is_fraud"]]
    joined = bootstrapped.frame.merge(truth, on="payment_id", how="left", validate="one_to_one")

    counts = joined.groupby(["label", "is_fraud"]).size().to_dict()

    # Fraud never charged back (the label fraction, 0.8) stays labelled 0: 62 of 202 frauds.
    # Chargebacks for other reasons (13.1) label 0, so no legitimate payment is labelled 1.
    assert counts == {(0, False): 1469, (0, True): 62, (1, True): 140}


@pytest.fixture
def store(tmp_path):
    yield from applied_store(tmp_path)


def _online(config, view: str, keys: dict, values: dict) -> None:
    declared = VIEWS_BY_NAME[view]
    row = {**keys, "event_timestamp": AT, "created_timestamp": AT}
    row.update({f.name: values.get(f.name) for f in declared.features})
    feature_store(config).write_to_online_store(view, pd.DataFrame([row]))


def _bits(value):
    if value is None or value is pd.NA:
        return None
    if hasattr(value, "item"):
        value = value.item()
    return struct.pack("<d", value) if isinstance(value, float) else value


def test_the_log_based_training_set_holds_the_served_values_bit_for_bit(store):
    _online(
        store,
        "card_velocity",
        {"card_id": "c1"},
        {"card_payments_1h": 4, "card_amount_cents_24h": 9600, "card_added_at": 1.7e9 + 0.1},
    )
    _online(store, "rider_profile", {"rider_id": "r1"}, {"rider_avg_fare_cents_30d": 1234.5678})
    _online(store, "zone_profile", {"zone_id": "Z-1"}, {"zone_median_fare_per_km_30d": 1 / 3})
    payments = [_payment(f"p{i}", AT + timedelta(minutes=i)) for i in range(4)]
    payments.append(_payment("p-new-card", AT + timedelta(minutes=9), card_id="c-new"))
    requests = [p.model_dump(mode="json") for p in payments]
    served = online_vector(store, requests)
    entries = [
        LoggedVector(
            event_id=str(p.event_id),
            request_time=p.occurred_at,
            model_version="v1",
            role="champion",
            vector=vector,
            # The last one is logged without its payload: its payment id comes from the
            # archived payment event.
            request=request if i < 4 else None,
        )
        for i, (p, vector, request) in enumerate(zip(payments, served, requests, strict=True))
    ]
    feature_log_write(store, entries[:2])
    feature_log_write(store, entries[2:])
    archive = store.offline_dir / "events"
    archive_events(
        archive,
        [
            *payments,
            _chargeback("p0", "10.4", AT + timedelta(days=1)),
            _chargeback("p1", "13.1", AT + timedelta(days=1)),
            _review("p2", "confirmed_fraud", AT + timedelta(hours=1)),
            _chargeback("p-new-card", "10.4", AT + timedelta(days=1), card_id="c-new"),
            # Another payment's label, never logged: joins nothing.
            _chargeback("p-elsewhere", "10.4", AT + timedelta(days=1)),
        ],
    )

    frame = logged_dataset(store, labels=labels(archive))

    assert frame["payment_id"].tolist() == ["p0", "p1", "p2", "p3", "p-new-card"]
    assert frame["label"].tolist() == [1, 0, 1, 0, 1]
    assert frame["label_source"].tolist() == [
        "chargeback",
        "chargeback",
        "review",
        "assumed_negative",
        "chargeback",
    ]
    # How long after the payment each label came (none for the assumed negative).
    assert frame["label_delay_s"].tolist()[:3] == [
        86400.0,
        86400.0 - 60,
        3600.0 - 120,
    ]
    assert pd.isna(frame.at[3, "label_delay_s"])
    for i, vector in enumerate(served):
        assert {n: _bits(frame.at[i, n]) for n in NAMES} == {
            n: _bits(v) for n, v in vector.features.items()
        }, i
    assert frame.at[0, "rider_avg_fare_cents_30d"] == 1234.5678
    assert frame.at[4, "card_payments_1h__status"] == "NOT_FOUND"
    # Maturity: an unlabelled payment younger than a day before ``as_of`` waits for its label
    # (p3); a labelled one is in however young (p-new-card's chargeback is known by then).
    as_of = AT + timedelta(days=1, minutes=2)
    young = logged_dataset(
        store, labels=labels(archive, as_of=as_of), maturity=timedelta(days=1), as_of=as_of
    )
    assert young["payment_id"].tolist() == ["p0", "p1", "p2", "p-new-card"]
    # Earlier, only the review was known: the rest wait, none is assumed negative yet.
    as_of = AT + timedelta(hours=2)
    early = logged_dataset(
        store, labels=labels(archive, as_of=as_of), maturity=timedelta(days=1), as_of=as_of
    )
    assert early[["payment_id", "label_source"]].values.tolist() == [["p2", "review"]]
