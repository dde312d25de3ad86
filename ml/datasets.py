"""Training sets: from the simulator's history (bootstrap) and from served-feature logs joined
with labels (log and wait).

Labels come only from label events, never from the simulator's ground truth: chargebacks
(``labels.chargeback_filed.v1``) and analysts' decisions (``reviews.decided.v1``), resolved per
payment by ``ml.labels`` (which says what each means and which wins when they disagree). False
fraud chargebacks exist, as in production: the model lives with that noise.

Which rows a training set holds (label maturity): a payment with a label known by then is
labelled by it (``label_source`` says by what: ``chargeback`` or ``review``); a payment without
one is assumed legitimate (``assumed_negative``) once it is older than the chargeback maturity
(the time by which most chargebacks have arrived); a younger one is left out, since its label
is not known yet. Reviews need no maturity: they come for reviewed payments only, within hours.

No Django: each function takes a ``FeatureConfig`` and paths.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from events.contracts import TOPICS
from features.definitions import BATCH_VIEWS, FEATURE_SERVICES, FRAUD_SCORING_V1
from features.offline import backfill, history_files
from features.served_log import logged_features
from features.store import FeatureConfig
from features.training import training_set
from ml.labels import (
    ASSUMED_NEGATIVE,
    Evidence,
    chargeback_evidence,
    resolved_frame,
    review_evidence,
)

PAYMENTS = "payments.authorized.v1"
CHARGEBACKS = "labels.chargeback_filed.v1"
REVIEWS = "reviews.decided.v1"

assert {PAYMENTS, CHARGEBACKS, REVIEWS} <= set(TOPICS), "topic names changed"


def _topic_files(history: Path, topic: str) -> list[Path]:
    """Return the Parquet files of ``topic`` under ``history``, namespaced topics included."""
    return [
        path
        for name, paths in history_files(history).items()
        if name == topic or name.endswith(f".{topic}")
        for path in paths
    ]


def history_events(history: Path, topic: str) -> pd.DataFrame:
    """Return every ``topic`` event under ``history`` (the simulator's layout or the stream
    processor's archive): ``event_id``, ``occurred_at`` (UTC) and the payload's top-level
    fields, one row per event id (an event archived twice after a replay counts once)."""
    rows = []
    for path in _topic_files(history, topic):
        table = pq.read_table(path, columns=["event_id", "occurred_at", "payload"])
        for event_id, occurred_at, payload in zip(
            table.column("event_id").to_pylist(),
            table.column("occurred_at").to_pylist(),
            table.column("payload").to_pylist(),
            strict=True,
        ):
            rows.append({**json.loads(payload), "event_id": event_id, "occurred_at": occurred_at})
    frame = pd.DataFrame(rows, columns=None if rows else ["event_id", "occurred_at"])
    frame["occurred_at"] = pd.to_datetime(frame["occurred_at"], utc=True)
    return frame.drop_duplicates("event_id").sort_values(["occurred_at", "event_id"])


def history_end(history: Path) -> datetime | None:
    """Return the latest event time under ``history`` (every topic), ``None`` when empty."""
    latest = None
    for paths in history_files(history).values():
        for path in paths:
            column = pq.read_table(path, columns=["occurred_at"]).column("occurred_at")
            if len(column):
                value = pd.Timestamp(max(column.to_pylist()))
                latest = value if latest is None or value > latest else latest
    return None if latest is None else latest.tz_convert(UTC).to_pydatetime()


def payments_spine(history: Path) -> pd.DataFrame:
    """Return one spine row per ``payments.authorized.v1`` event under ``history``, as the
    scorer reads features for it: ``event_id``, ``payment_id``, the entities (``card_id``,
    ``rider_id``, ``zone_id`` = pickup zone, ``device_id`` and ``ip_address`` from its
    context; no driver: the payment event names none, so serving reads none),
    ``event_timestamp`` = ``occurred_at`` and the request fields ``amount_cents``,
    ``distance_km``; and ``trip_id``, which names the driver once the trip is done."""
    events = history_events(history, PAYMENTS)
    spine = pd.DataFrame(
        {
            "event_id": events["event_id"].astype(str),
            "payment_id": events.get("payment_id"),
            "trip_id": events.get("trip_id"),
            "card_id": events.get("card_id"),
            "rider_id": events.get("rider_id"),
            "zone_id": events.get("pickup_zone"),
            "device_id": _context(events, "device_id"),
            "ip_address": _context(events, "ip"),
            "event_timestamp": events["occurred_at"],
            "amount_cents": events.get("amount_cents"),
            "distance_km": events.get("distance_km"),
        }
    )
    spine["distance_km"] = spine["distance_km"].astype("Float64")
    return spine.reset_index(drop=True)


def captures_spine(history: Path) -> pd.DataFrame:
    """Return one spine row per completed trip's payment under ``history``, as the capture
    scorer reads features for it (``payments.capture_requested.v1``, published at the
    completion): ``payments_spine``'s columns with the trip's ``driver_id``, the completion's
    instant as ``event_timestamp`` and its fare as ``amount_cents``. Payments whose trip never
    completed (cancelled, declined) are not captured, so not scored: left out."""
    spine = payments_spine(history)
    trips = history_events(history, "trips.completed.v1")
    if trips.empty or spine.empty:
        return spine.iloc[0:0].assign(driver_id=pd.Series(dtype=object))
    done = trips.drop_duplicates("trip_id").set_index("trip_id")
    spine = spine[spine["trip_id"].isin(done.index)].copy()
    spine["driver_id"] = spine["trip_id"].map(done["driver_id"])
    spine["event_timestamp"] = spine["trip_id"].map(done["occurred_at"])
    spine["amount_cents"] = spine["trip_id"].map(done["fare_cents"])
    return spine.sort_values("event_timestamp", kind="stable").reset_index(drop=True)


def _context(events: pd.DataFrame, name: str) -> pd.Series:
    """The payments' ``context.<name>`` (None where a payment has no context)."""
    if "context" not in events.columns:
        return pd.Series([None] * len(events), index=events.index, dtype=object)
    return events["context"].map(lambda c: c.get(name) if isinstance(c, dict) else None)


def labels(history: Path, *, as_of: datetime | None = None) -> pd.DataFrame:
    """Return one label per labelled payment under ``history`` (``ml.labels.LABEL_COLUMNS``),
    resolved by ``ml.labels`` from the label events known at ``as_of`` (default: all)."""
    evidence = label_evidence(history)
    if as_of is not None:
        evidence = [pair for pair in evidence if pair[1].known_at <= as_of]
    return resolved_frame(evidence)


def label_evidence(history: Path) -> list[tuple[str, Evidence]]:
    """Return every label event under ``history`` as ``(payment_id, Evidence)``, grouped by
    payment id (``ml.labels.resolved_frame``'s input)."""
    evidence: list[tuple[str, Evidence]] = []
    chargebacks = history_events(history, CHARGEBACKS)
    for row in chargebacks.itertuples(index=False):
        found = chargeback_evidence(
            reason_code=str(row.reason_code),
            known_at=row.occurred_at.to_pydatetime(),
            event_id=str(row.event_id),
        )
        evidence.append((str(row.payment_id), found))
    reviews = history_events(history, REVIEWS)
    if len(reviews) and "expired" in reviews.columns:
        # Closed by the expiry policy: nobody looked at it.
        reviews = reviews[~reviews["expired"].fillna(False).astype(bool)]
    for row in reviews.itertuples(index=False):
        reason = getattr(row, "reason", None)
        found = review_evidence(
            decision=str(row.decision),
            reason=reason if isinstance(reason, str) else None,
            known_at=row.occurred_at.to_pydatetime(),
            event_id=str(row.event_id),
        )
        evidence.append((str(row.payment_id), found))
    evidence.sort(key=lambda pair: pair[0])
    return evidence


def with_labels(
    frame: pd.DataFrame,
    found: pd.DataFrame,
    *,
    time_column: str,
    mature_before: datetime | None,
) -> pd.DataFrame:
    """Return ``frame``'s rows with their labels from ``found``: a labelled row keeps its
    label, a row without one is an assumed negative when its ``time_column`` is at or before
    ``mature_before`` (``None``: every row) and is left out otherwise. Adds ``label``,
    ``label_source``, ``labelled_at``, ``label_delay_s`` (labelled_at minus the row's time;
    null for an assumed negative) and ``contradicted``.

    The assumed negatives are not weighed up to stand for the young payments left out: fraud
    that is never charged back is among them, and weighing them up taught every retraining
    policy less (docs/performance.md, learning loop)."""
    merged = frame.merge(found, on="payment_id", how="left", validate="many_to_one")
    unlabelled = merged["label"].isna()
    if mature_before is not None:
        young = merged[time_column] > pd.Timestamp(mature_before)
        merged = merged[~(unlabelled & young)].reset_index(drop=True)
        unlabelled = merged["label"].isna()
    merged["label"] = merged["label"].fillna(0).astype(int)
    merged["label_source"] = merged["label_source"].where(~unlabelled, ASSUMED_NEGATIVE)
    merged["contradicted"] = merged["contradicted"].astype("boolean").fillna(False).astype(bool)
    merged["label_delay_s"] = (merged["labelled_at"] - merged[time_column]).dt.total_seconds()
    return merged


def bootstrap_dataset(
    config: FeatureConfig,
    history: Path,
    *,
    maturity: timedelta = timedelta(days=3),
    snapshot_every: timedelta = timedelta(hours=1),
    service: str = FRAUD_SCORING_V1.name,
) -> pd.DataFrame:
    """Return the bootstrap training set of ``service`` on the simulator history at
    ``history``: one row per payment at least ``maturity`` older than the history's last
    event, with every feature as it was at the payment's instant (point in time,
    ``features.training.training_set``: the stream views evaluated over ``history`` at the
    instant, as the scorer serves them) and its label. A capture checkpoint's service reads
    each completed trip's payment at its completion, with its driver (``captures_spine``).

    Side effect: backfill the batch views over the history into ``config``'s offline store (an
    applied store of its own: the history is another world than the live one), snapshotted
    every ``snapshot_every`` (as materialisation does online); the stream views are read from
    the history itself.
    """
    backfill(config, history=history, views=BATCH_VIEWS, snapshot_every=snapshot_every)
    capture = FEATURE_SERVICES[service].checkpoint == "capture"
    spine = captures_spine(history) if capture else payments_spine(history)
    end = history_end(history)
    if end is not None:
        # Every row is as old as the maturity, labelled or not: the set's rows do not depend
        # on which frauds were caught.
        spine = spine[spine["event_timestamp"] <= end - maturity]
    spine = with_labels(
        spine.reset_index(drop=True),
        labels(history),
        time_column="event_timestamp",
        mature_before=None,
    )
    return training_set(config, spine, service, history=history)


def logged_dataset(
    config: FeatureConfig,
    *,
    labels: pd.DataFrame,
    maturity: timedelta = timedelta(0),
    as_of: datetime | None = None,
    detail: bool = True,
    service: str = FRAUD_SCORING_V1.name,
) -> pd.DataFrame:
    """Return the log-and-wait training set of ``service``: every logged vector
    (``fraud.feature_log``, the values exactly as served, nothing recomputed) of a payment
    served by ``as_of`` (default now), joined on ``payment_id`` with its label in ``labels``
    (``ml.labels.LABEL_COLUMNS``, the labels known at ``as_of``); an unlabelled payment is an
    assumed negative once it is ``maturity`` older than ``as_of`` and left out before (the
    module's docstring).

    A logged row without a payment id gets it from the archived ``payments.authorized.v1``
    event of the same ``event_id``; a row whose payment stays unknown is left out. Without
    ``detail``, no served statuses and event times (``features.served_log.logged_features``).
    Read only.
    """
    logged = logged_features(config, service, detail=detail)
    archive = config.data_dir
    missing = logged["payment_id"].isna()
    if missing.any():
        payments = history_events(archive, PAYMENTS)
        by_event = dict(
            zip(payments["event_id"].astype(str), payments.get("payment_id", []), strict=True)
        )
        logged.loc[missing, "payment_id"] = logged.loc[missing, "event_id"].map(by_event)
        logged = logged[logged["payment_id"].notna()]
    now = as_of or datetime.now(UTC)
    logged = logged[logged["request_time"] <= pd.Timestamp(now)]
    return with_labels(
        logged.reset_index(drop=True),
        labels,
        time_column="request_time",
        mature_before=now - maturity,
    )
