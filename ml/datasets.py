"""Training sets: from the simulator's history (bootstrap) and from served-feature logs joined
with labels (log and wait).

Labels come only from label events, never from the simulator's ground truth:

- ``labels.chargeback_filed.v1``: a chargeback whose reason code is in the card networks'
  fraud category (Visa 10.x, ``FRAUD_REASON_CATEGORY``) labels its payment 1; another reason
  ("service not received") labels it 0. False fraud chargebacks exist, as in production: the
  model lives with that noise.
- ``reviews.decided.v1``: an analyst's ``confirmed_fraud`` labels the payment 1,
  ``legitimate`` 0; a review the expiry policy closed (``expired``) labels nothing: nobody
  looked at it.

A payment with any fraud label is 1; a payment with no label is 0 once it is older than the
label maturity (the time by which most chargebacks have arrived); younger ones are left out,
since their label is not known yet.

No Django: each function takes a ``FeatureConfig`` and paths.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from events.contracts import TOPICS
from features.definitions import BATCH_VIEWS
from features.offline import backfill, history_files
from features.served_log import logged_features
from features.store import FeatureConfig
from features.training import training_set

FRAUD_REASON_CATEGORY = "10."
PAYMENTS = "payments.authorized.v1"
CHARGEBACKS = "labels.chargeback_filed.v1"
REVIEWS = "reviews.decided.v1"
LABEL_COLUMNS = ["payment_id", "label", "label_source", "labelled_at"]

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
    ``rider_id``, ``zone_id`` = pickup zone; no driver: the payment event names none, so
    serving reads none), ``event_timestamp`` = ``occurred_at`` and the request fields
    ``amount_cents``, ``distance_km``."""
    events = history_events(history, PAYMENTS)
    spine = pd.DataFrame(
        {
            "event_id": events["event_id"].astype(str),
            "payment_id": events.get("payment_id"),
            "card_id": events.get("card_id"),
            "rider_id": events.get("rider_id"),
            "zone_id": events.get("pickup_zone"),
            "event_timestamp": events["occurred_at"],
            "amount_cents": events.get("amount_cents"),
            "distance_km": events.get("distance_km"),
        }
    )
    spine["distance_km"] = spine["distance_km"].astype("Float64")
    return spine.reset_index(drop=True)


def labels(history: Path) -> pd.DataFrame:
    """Return one label per labelled payment under ``history``: ``payment_id``, ``label``
    (1 fraud, 0 not), ``label_source`` (``chargeback`` or ``review``: what decided it) and
    ``labelled_at`` (when the deciding label arrived: the first fraud label, else the first)."""
    parts = []
    chargebacks = history_events(history, CHARGEBACKS)
    if len(chargebacks):
        parts.append(
            pd.DataFrame(
                {
                    "payment_id": chargebacks["payment_id"],
                    "label": chargebacks["reason_code"]
                    .astype(str)
                    .str.startswith(FRAUD_REASON_CATEGORY)
                    .astype(int),
                    "label_source": "chargeback",
                    "labelled_at": chargebacks["occurred_at"],
                }
            )
        )
    reviews = history_events(history, REVIEWS)
    if len(reviews) and "expired" in reviews.columns:
        reviews = reviews[~reviews["expired"].fillna(False).astype(bool)]
    if len(reviews):
        parts.append(
            pd.DataFrame(
                {
                    "payment_id": reviews["payment_id"],
                    "label": (reviews["decision"] == "confirmed_fraud").astype(int),
                    "label_source": "review",
                    "labelled_at": reviews["occurred_at"],
                }
            )
        )
    if not parts:
        return pd.DataFrame(
            {
                "payment_id": pd.Series(dtype=object),
                "label": pd.Series(dtype=int),
                "label_source": pd.Series(dtype=object),
                "labelled_at": pd.Series(dtype="datetime64[us, UTC]"),
            }
        )
    every = pd.concat(parts, ignore_index=True)
    # Fraud first, then the earliest: the first row per payment is the deciding label.
    every = every.sort_values(["payment_id", "label", "labelled_at"], ascending=[True, False, True])
    return every.drop_duplicates("payment_id").reset_index(drop=True)[LABEL_COLUMNS]


def _with_labels(frame: pd.DataFrame, found: pd.DataFrame) -> pd.DataFrame:
    merged = frame.merge(found, on="payment_id", how="left", validate="many_to_one")
    merged["label"] = merged["label"].fillna(0).astype(int)
    merged["label_source"] = merged["label_source"].fillna("none")
    return merged


def bootstrap_dataset(
    config: FeatureConfig,
    history: Path,
    *,
    maturity: timedelta = timedelta(days=3),
    snapshot_every: timedelta = timedelta(hours=1),
) -> pd.DataFrame:
    """Return the bootstrap training set of the simulator history at ``history``: one row per
    payment at least ``maturity`` older than the history's last event, with every feature as
    it was at the payment's instant (point in time, ``features.training.training_set``: the
    stream views evaluated over ``history`` at the instant, as the scorer serves them) and its
    label.

    Side effect: backfill the batch views over the history into ``config``'s offline store (an
    applied store of its own: the history is another world than the live one), snapshotted
    every ``snapshot_every`` (as materialisation does online); the stream views are read from
    the history itself.
    """
    backfill(config, history=history, views=BATCH_VIEWS, snapshot_every=snapshot_every)
    spine = payments_spine(history)
    end = history_end(history)
    if end is not None:
        spine = spine[spine["event_timestamp"] <= end - maturity]
    spine = _with_labels(spine.reset_index(drop=True), labels(history))
    return training_set(config, spine, history=history)


def logged_dataset(
    config: FeatureConfig,
    *,
    maturity: timedelta = timedelta(0),
    as_of: datetime | None = None,
) -> pd.DataFrame:
    """Return the log-and-wait training set: every logged vector (``fraud.feature_log``, the
    values exactly as served, nothing recomputed) of a payment at least ``maturity`` older
    than ``as_of`` (default now), joined on ``payment_id`` with its label from the archived
    label events under ``config``'s offline store.

    A logged row without a payment id gets it from the archived ``payments.authorized.v1``
    event of the same ``event_id``; a row whose payment stays unknown is left out. Read only.
    """
    logged = logged_features(config)
    archive = config.data_dir
    missing = logged["payment_id"].isna()
    if missing.any():
        payments = history_events(archive, PAYMENTS)
        by_event = dict(
            zip(payments["event_id"].astype(str), payments.get("payment_id", []), strict=True)
        )
        logged.loc[missing, "payment_id"] = logged.loc[missing, "event_id"].map(by_event)
        logged = logged[logged["payment_id"].notna()]
    cutoff = (as_of or datetime.now(UTC)) - maturity
    logged = logged[logged["request_time"] <= pd.Timestamp(cutoff)]
    return _with_labels(logged.reset_index(drop=True), labels(archive))
