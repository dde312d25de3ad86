"""Backtest on your own data: a file of labelled payments through the platform's own feature
definitions, offline, and the model the platform would have trained on it, judged on a later
window (``manage.py backtest FILE``; docs/models.md, Backtest on your own data).

1. **Events.** Each row becomes the events the app would have published
   (``events.payments_file`` reads the file): the card's first sighting (``cards.added.v1``),
   the payment (``payments.authorized.v1``, or ``payments.declined.v1`` with a decline code), its
   trip completed by the row's driver (``trips.completed.v1``, a driver id alone is enough), and
   for a fraudulent row a fraud chargeback filed ``label_delay`` later
   (``labels.chargeback_filed.v1``): the features see a label only from its arrival. Written as
   an event history (Parquet per topic) in bounded chunks, never all in memory.
2. **Features.** The batch views are snapshotted over that history every ``snapshot_every``
   (``features.offline.backfill``), then every payment gets its point-in-time vector
   (``features.training.training_set``, the DuckDB engine): the authorization checkpoint
   (``fraud_scoring_v2``), and when the file names drivers the capture checkpoint
   (``fraud_capture_v1``, with the driver's features).
3. **Model.** Training rows are the window ``[train_start, train_start + train_days)``, labelled
   fraud only where the chargeback was known by the test window's start (later ones count as
   legitimate, as they would have); a small LightGBM grid is chosen by prequential validation
   (folds of the newest training days, each trained on the days before it with the labels known
   then); the chosen model is refit on the whole window and calibrated (isotonic, on the newest
   fold's out-of-fold scores).
4. **Judgement** on ``[test_start, test_start + test_days)`` after ``gap_days``, with the
   file's own labels: AUC ROC, average precision, Card Precision@k per day, and precision and
   recall at the threshold chosen on the validation fold for an analyst budget (``budget``
   reviews a day) or a target precision. Optionally cards already known fraudulent before a
   test day are removed from that day (the practice of the fraud-detection literature: they
   would be blocked).
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import math
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.isotonic import IsotonicRegression

from events.contracts import chargeback_is_fraud
from events.payments_file import (
    BadRow,
    amount_cents,
    file_salt,
    label,
    read_rows,
    text,
    timestamp,
)
from features.definitions import (
    FEATURE_SERVICES,
    FRAUD_CAPTURE_V1,
    FRAUD_SCORING_V2,
    FeatureService,
)
from features.offline.backfill import backfill
from features.store import FeatureConfig
from features.training import training_set
from ml.evaluate import auc_pr, auc_roc, card_precision_at_k
from ml.train import TrainParams, feature_matrix, model_features

# The fraud chargeback every fraudulent row is given (Visa: other fraud, card absent).
REASON_FRAUD = "10.4"
ID_NAMESPACE = uuid.UUID("0b6f3f4e-3c2a-4f7e-8d0e-6a1f2b9c7d51")
# Rows per chunk written to the event history and the spine.
CHUNK = 100_000
AUTHORIZATION = "authorization"
CAPTURE = "capture"
# The grid prequential validation chooses from: leaves, boosting rounds, weight of the fraud
# class. Learning rate, leaf size and sampling stay ml.train's.
GRID = {"num_leaves": (15, 63), "num_boost_round": (100, 300), "scale_pos_weight": (1.0, 10.0)}
DAY = timedelta(days=1)


class BacktestError(ValueError):
    """A file or an option the backtest cannot run with: the message names the row or the
    option."""


@dataclass(frozen=True)
class Split:
    train_start: datetime
    train_days: int = 7
    gap_days: int = 7
    test_days: int = 7

    @property
    def train_end(self) -> datetime:
        return self.train_start + self.train_days * DAY

    @property
    def test_start(self) -> datetime:
        return self.train_end + self.gap_days * DAY

    @property
    def test_end(self) -> datetime:
        return self.test_start + self.test_days * DAY


@dataclass(frozen=True)
class Options:
    split: Split
    label_delay: timedelta = timedelta(days=7)
    drop_known_cards: bool = False
    # Reviews a day the threshold is chosen for; or, when set, the precision it must reach.
    budget: int = 100
    target_precision: float | None = None
    k: int = 100
    folds: int = 3
    snapshot_every: timedelta = timedelta(days=1)
    seed: int = 7
    # The authorization checkpoint's feature service: fraud_scoring_v1 measures the features
    # before the standard ones were added.
    service: str = FRAUD_SCORING_V2.name


@dataclass
class FileSummary:
    rows: int = 0
    payments: int = 0
    declined: int = 0
    frauds: int = 0
    drivers: int = 0
    first: datetime | None = None
    last: datetime | None = None
    events: dict[str, int] = field(default_factory=dict)


# --- 1. the file as events ----------------------------------------------------------------


class _Writers:
    """One Parquet writer per topic under ``<directory>/events``, chunk by chunk."""

    schema = pa.schema(
        [
            ("event_id", pa.string()),
            ("occurred_at", pa.timestamp("us", tz="UTC")),
            ("payload", pa.string()),
        ]
    )

    def __init__(self, directory: Path) -> None:
        self.root = directory / "events"
        self.root.mkdir(parents=True, exist_ok=True)
        self.pending: dict[str, list[tuple[str, datetime, str]]] = {}
        self.writers: dict[str, pq.ParquetWriter] = {}
        self.counts: dict[str, int] = {}

    def add(self, topic: str, event_id: str, at: datetime, payload: dict) -> None:
        body = {"event_id": event_id, "occurred_at": at.isoformat(), **payload}
        self.pending.setdefault(topic, []).append((event_id, at, json.dumps(body)))
        self.counts[topic] = self.counts.get(topic, 0) + 1
        if len(self.pending[topic]) >= CHUNK:
            self.flush(topic)

    def flush(self, topic: str) -> None:
        rows = self.pending.pop(topic, [])
        if not rows:
            return
        ids, stamps, payloads = zip(*rows, strict=True)
        table = pa.table([list(ids), list(stamps), list(payloads)], schema=self.schema)
        if topic not in self.writers:
            self.writers[topic] = pq.ParquetWriter(self.root / f"{topic}.parquet", self.schema)
        self.writers[topic].write_table(table)

    def close(self) -> None:
        for topic in list(self.pending):
            self.flush(topic)
        for writer in self.writers.values():
            writer.close()


SPINE_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("payment_id", pa.string()),
        ("card_id", pa.string()),
        ("rider_id", pa.string()),
        ("driver_id", pa.string()),
        ("zone_id", pa.string()),
        ("device_id", pa.string()),
        ("ip_address", pa.string()),
        ("event_timestamp", pa.timestamp("us", tz="UTC")),
        ("amount_cents", pa.int64()),
        ("label", pa.bool_()),
        # When the fraud label arrived (its chargeback); null for a payment never reported.
        ("known_at", pa.timestamp("us", tz="UTC")),
    ]
)


def file_events(path: Path, directory: Path, *, label_delay: timedelta) -> FileSummary:
    """Write the events of the labelled payments ``path`` holds as an event history under
    ``directory`` (``events/<topic>.parquet``) and its payments as ``spine.parquet``; return
    what was read. Raise ``BacktestError`` naming the line of the first bad row (a backtest on
    rows silently dropped would judge another file): nothing is kept then."""
    if not path.is_file():
        raise BacktestError(f"{path}: no such file")
    summary = FileSummary()
    salt = file_salt(path)
    writers = _Writers(directory)
    spine_writer = pq.ParquetWriter(directory / "spine.parquet", SPINE_SCHEMA)
    spine: list[dict] = []
    cards: set[str] = set()
    drivers: set[str] = set()
    try:
        rows = read_rows(path)
        try:
            first = next(rows)
        except StopIteration:
            raise BacktestError(f"{path}: no rows") from None
        except ValueError as exc:
            raise BacktestError(str(exc)) from None
        for line, raw in itertools.chain([first], rows):
            try:
                row = _row(raw)
            except BadRow as exc:
                raise BacktestError(f"{path}, line {line}: {exc}") from None
            if row["label"] is None:
                raise BacktestError(f"{path}: no label column: a backtest needs one")
            ids = _ids(salt, line)
            at = row["at"]
            summary.rows += 1
            summary.first = at if summary.first is None else min(summary.first, at)
            summary.last = at if summary.last is None else max(summary.last, at)
            context = {"device_id": row["device"], "ip": row["ip"], "lat": None, "lng": None}
            if row["card"] not in cards:
                cards.add(row["card"])
                writers.add(
                    "cards.added.v1",
                    ids("card"),
                    at,
                    {"card_id": row["card"], "rider_id": row["rider"], "context": context},
                )
            payment = {
                "payment_id": ids("payment"),
                "trip_id": ids("trip"),
                "rider_id": row["rider"],
                "card_id": row["card"],
                "amount_cents": row["amount_cents"],
                "currency": "EUR",
                "pickup_zone": row["zone"],
                "distance_km": None,
                "context": context,
            }
            if row["decline_code"]:
                summary.declined += 1
                writers.add(
                    "payments.declined.v1",
                    ids("declined"),
                    at,
                    {**payment, "decline_code": row["decline_code"]},
                )
                continue
            summary.payments += 1
            writers.add("payments.authorized.v1", ids("payment-event"), at, payment)
            if row["driver"]:
                drivers.add(row["driver"])
                writers.add(
                    "trips.completed.v1",
                    ids("completed"),
                    at,
                    {
                        "trip_id": payment["trip_id"],
                        "rider_id": row["rider"],
                        "driver_id": row["driver"],
                        "fare_cents": row["amount_cents"],
                        "distance_km": 0.0,
                    },
                )
            if row["label"]:
                summary.frauds += 1
                writers.add(
                    "labels.chargeback_filed.v1",
                    ids("chargeback"),
                    at + label_delay,
                    {
                        "chargeback_id": ids("chargeback-id"),
                        "payment_id": payment["payment_id"],
                        "card_id": row["card"],
                        "rider_id": row["rider"],
                        "amount_cents": row["amount_cents"],
                        "reason_code": REASON_FRAUD,
                        "trip_id": payment["trip_id"],
                        "driver_id": row["driver"] or None,
                        "pickup_zone": row["zone"] or None,
                    },
                )
            spine.append(
                {
                    "event_id": ids("payment-event"),
                    "payment_id": payment["payment_id"],
                    "card_id": row["card"],
                    "rider_id": row["rider"],
                    "driver_id": row["driver"] or None,
                    "zone_id": row["zone"] or None,
                    "device_id": row["device"],
                    "ip_address": row["ip"],
                    "event_timestamp": at,
                    "amount_cents": row["amount_cents"],
                    "label": row["label"],
                    "known_at": at + label_delay if row["label"] else None,
                }
            )
            if len(spine) >= CHUNK:
                spine_writer.write_table(pa.Table.from_pylist(spine, schema=SPINE_SCHEMA))
                spine.clear()
        if spine:
            spine_writer.write_table(pa.Table.from_pylist(spine, schema=SPINE_SCHEMA))
    finally:
        spine_writer.close()
        writers.close()
    summary.drivers = len(drivers)
    summary.events = dict(writers.counts)
    return summary


def _ids(salt: str, line: int) -> Callable[[str], str]:
    return lambda what: str(uuid.uuid5(ID_NAMESPACE, f"{salt}:{line}:{what}"))


def _row(raw: dict) -> dict[str, Any]:
    rider, card = text(raw, "rider"), text(raw, "card")
    if not rider or not card:
        raise BadRow("rider and card are required")
    return {
        "at": timestamp(raw.get("timestamp")),
        "rider": rider,
        "card": card,
        "amount_cents": amount_cents(raw.get("amount")),
        "label": label(raw),
        "driver": text(raw, "driver"),
        "zone": text(raw, "zone", limit=32),
        "device": text(raw, "device") or None,
        "ip": text(raw, "ip", limit=45) or None,
        "decline_code": text(raw, "decline_code", limit=32),
    }


def history_spine(history: Path, directory: Path) -> FileSummary:
    """Write the payments of a simulator history (``manage.py simulate history``: events and
    ``ground_truth.parquet``) as ``spine.parquet`` under ``directory``: the trip's driver from
    its completion, the label from the ground truth, and when it became known from the
    history's own fraud chargebacks (the simulator's delays, not a chosen one)."""
    from ml.datasets import history_events, payments_spine

    truth_path = history / "ground_truth.parquet"
    if not truth_path.is_file():
        raise BacktestError(f"{history}: no ground_truth.parquet (a simulate history directory)")
    spine = payments_spine(history)
    if spine.empty:
        raise BacktestError(f"{history}: no payment")
    trips = history_events(history, "trips.completed.v1")
    chargebacks = history_events(history, "labels.chargeback_filed.v1")
    truth = pq.read_table(truth_path, columns=["topic", "payment_id", "is_fraud"]).to_pandas()
    fraud = truth[(truth["topic"] == "payments.authorized.v1") & truth["is_fraud"]]
    drivers = (
        trips.drop_duplicates("trip_id").set_index("trip_id")["driver_id"]
        if not trips.empty
        else pd.Series(dtype=object)
    )
    known = pd.Series(dtype="datetime64[us, UTC]")
    if not chargebacks.empty:
        reported = chargebacks[chargebacks["reason_code"].astype(str).map(chargeback_is_fraud)]
        known = reported.groupby("payment_id")["occurred_at"].min()
    spine["driver_id"] = spine["trip_id"].map(drivers)
    spine["zone_id"] = spine["zone_id"].replace("", None)
    spine["label"] = spine["payment_id"].isin(set(fraud["payment_id"]))
    spine["known_at"] = spine["payment_id"].map(known)
    spine["known_at"] = pd.to_datetime(spine["known_at"], utc=True)
    table = pa.Table.from_pandas(
        spine[SPINE_SCHEMA.names], schema=SPINE_SCHEMA, preserve_index=False
    )
    pq.write_table(table, directory / "spine.parquet")
    return FileSummary(
        rows=len(spine),
        payments=len(spine),
        frauds=int(spine["label"].sum()),
        drivers=int(spine["driver_id"].nunique()),
        first=spine["event_timestamp"].min().to_pydatetime(),
        last=spine["event_timestamp"].max().to_pydatetime(),
    )


# --- 2. features ----------------------------------------------------------------------------


def checkpoint_frame(
    config: FeatureConfig, history: Path, spine: pd.DataFrame, service: FeatureService
) -> pd.DataFrame:
    """Return ``spine`` with every feature of ``service`` at each payment's instant."""
    rows = spine.copy()
    if service.name != FRAUD_CAPTURE_V1.name:
        # At authorization no driver is known: the payment event names none.
        rows["driver_id"] = None
    return training_set(config, rows, service.name, history=history)


# --- 3. the model ---------------------------------------------------------------------------


def _known_fraud(frame: pd.DataFrame, by: datetime) -> np.ndarray:
    """Labels as known at ``by``: fraud only where its chargeback arrived by then."""
    known = pd.to_datetime(frame["known_at"], utc=True)
    return (frame["label"].astype(bool) & known.notna() & (known <= pd.Timestamp(by))).to_numpy()


def _params(choice: dict[str, Any], seed: int) -> tuple[dict[str, Any], int]:
    base = TrainParams(seed=seed, num_threads=2)
    params = base.lightgbm_params() | {
        "num_leaves": choice["num_leaves"],
        "scale_pos_weight": choice["scale_pos_weight"],
        "min_data_in_leaf": 50,
    }
    return params, choice["num_boost_round"]


def _fit(frame: pd.DataFrame, y: np.ndarray, features: list[str], choice: dict, seed: int):
    params, rounds = _params(choice, seed)
    data = lgb.Dataset(feature_matrix(frame, features), label=y.astype(int), feature_name=features)
    return lgb.train(params, data, num_boost_round=rounds)


@dataclass
class Fold:
    start: datetime
    end: datetime
    ap: float


@dataclass
class Selection:
    choice: dict[str, Any]
    folds: list[Fold]
    # The newest fold's out-of-fold scores and labels: calibration and thresholds.
    scores: np.ndarray
    labels: np.ndarray
    days: int


def fold_windows(options: Options) -> list[tuple[datetime, datetime, datetime, datetime]]:
    """The prequential folds, newest first: (train start, train end, check start, check end).
    Fold i checks on ``test_days`` ending ``label_delay`` + (i - 1) x ``test_days`` before the
    test window (so its labels were known when the test began) and trains on ``train_days``
    ending ``gap_days`` before its check, as the real split does."""
    split = options.split
    delay_days = math.ceil(options.label_delay / DAY)
    windows = []
    for i in range(options.folds):
        check_end = split.test_start - (delay_days + i * split.test_days) * DAY
        check_start = check_end - split.test_days * DAY
        train_end = check_start - split.gap_days * DAY
        windows.append((train_end - split.train_days * DAY, train_end, check_start, check_end))
    return windows


def select_model(
    frame: pd.DataFrame, features: list[str], options: Options, on_step: Callable[[str], None]
) -> Selection:
    """Choose from ``GRID`` by mean average precision over the prequential folds
    (``fold_windows``) the file covers, each trained with the labels known at its check's
    start and checked against the file's labels."""
    stamps = pd.to_datetime(frame["event_timestamp"], utc=True)
    first = stamps.min()
    folds = []
    for train_start, train_end, check_start, check_end in fold_windows(options):
        if pd.Timestamp(train_start) < first.floor("D"):
            continue
        fit_rows = frame[(stamps >= train_start) & (stamps < train_end)]
        check = frame[(stamps >= check_start) & (stamps < check_end)]
        y_fit = _known_fraud(fit_rows, check_start)
        # Checked on the labels known when the real test begins: all of them with a fixed delay.
        y_check = _known_fraud(check, options.split.test_start).astype(int)
        if y_fit.sum() == 0 or y_check.sum() == 0:
            continue
        folds.append((check_start, check_end, fit_rows, y_fit, check, y_check))
    if not folds:
        split = options.split
        need = (
            math.ceil(options.label_delay / DAY)
            + split.test_days
            + split.gap_days
            + split.train_days
        )
        raise BacktestError(
            f"no validation fold: model selection needs {need} days of labelled payments "
            f"before --train-start's test window ({split.test_start:%Y-%m-%d}), with fraud "
            "known in each: choose a later --train-start"
        )
    choices = [dict(zip(GRID, values, strict=True)) for values in itertools.product(*GRID.values())]
    results: dict[int, list[float]] = {i: [] for i in range(len(choices))}
    newest: dict[int, np.ndarray] = {}
    for f, (_start, _end, fit_rows, y_fit, check, y_check) in enumerate(folds):
        x_check = feature_matrix(check, features)
        for i, choice in enumerate(choices):
            on_step(f"fold {f + 1}/{len(folds)}, parameters {i + 1}/{len(choices)}")
            booster = _fit(fit_rows, y_fit, features, choice, options.seed)
            scores = booster.predict(x_check)
            results[i].append(auc_pr(y_check, scores) or 0.0)
            if f == 0:
                newest[i] = scores
    best = max(results, key=lambda i: (float(np.mean(results[i])), -i))
    return Selection(
        choice=choices[best],
        folds=[Fold(start, end, results[best][f]) for f, (start, end, *_rest) in enumerate(folds)],
        scores=newest[best],
        labels=folds[0][5],
        days=options.split.test_days,
    )


def threshold_for(
    scores: np.ndarray, labels: np.ndarray, *, days: int, budget: int, precision: float | None
) -> float:
    """The score threshold chosen on validation: the lowest at which precision reaches
    ``precision``, else the one flagging ``budget`` payments a day."""
    order = np.argsort(-scores, kind="mergesort")
    ranked, hits = scores[order], np.cumsum(labels[order])
    if precision is not None:
        shares = hits / np.arange(1, len(ranked) + 1)
        reaching = np.nonzero(shares >= precision)[0]
        if len(reaching):
            return float(ranked[reaching[-1]])
        return math.inf
    count = min(len(ranked), budget * days)
    return float(ranked[count - 1]) if count else math.inf


# --- 4. judgement ---------------------------------------------------------------------------


@dataclass
class CheckpointReport:
    checkpoint: str
    service: str
    features: int
    train_rows: int
    train_frauds_known: int
    test_rows: int
    test_frauds: int
    dropped_known_cards: int
    choice: dict[str, Any]
    folds: list[dict[str, Any]]
    auc: float | None
    ap: float | None
    cp_at_k: float | None
    cp_at_k_per_day: list[dict[str, Any]]
    threshold: float
    # The calibrated probability at the threshold; the Brier score of the calibrated
    # probabilities on the test, and the fraud they expect among the flagged payments.
    calibrated_threshold: float
    brier: float
    expected_frauds_flagged: float
    flagged_per_day: float
    precision: float | None
    recall: float | None
    importances: list[tuple[str, float]]
    pr_curve: dict[str, list[float]] = field(default_factory=dict)
    booster: Any = None


def judge(
    frame: pd.DataFrame,
    checkpoint: str,
    service: FeatureService,
    options: Options,
    on_step: Callable[[str], None],
) -> CheckpointReport:
    """Select, fit, calibrate and judge the model of one checkpoint over ``frame`` (the
    spine with the service's features)."""
    split = options.split
    features = model_features(service.name)
    stamps = pd.to_datetime(frame["event_timestamp"], utc=True)
    train = frame[(stamps >= split.train_start) & (stamps < split.train_end)]
    y_train = _known_fraud(train, split.test_start)
    if y_train.sum() == 0:
        raise BacktestError(
            "no fraud known in the training window "
            f"({split.train_start:%Y-%m-%d} + {split.train_days} days, labels "
            f"{options.label_delay.days} days late): choose another --train-start"
        )
    test = frame[(stamps >= split.test_start) & (stamps < split.test_end)].copy()
    dropped = 0
    if options.drop_known_cards:
        test, dropped = _without_known_cards(frame, test)
    if test.empty:
        raise BacktestError("the test window holds no payment")
    selection = select_model(frame, features, options, on_step)
    on_step("the chosen model on the whole training window")
    booster = _fit(train, y_train, features, selection.choice, options.seed)
    # Calibrated as scikit-learn's CalibratedClassifierCV(ensemble=False) does: the map is fit
    # on out-of-fold scores (the newest fold's model on its check) and applied to the model
    # refit on all the training rows.
    calibration = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
    calibration.fit(selection.scores, selection.labels)
    scores = booster.predict(feature_matrix(test, features))
    probabilities = calibration.predict(scores)
    y = test["label"].astype(int).to_numpy()
    if options.target_precision is not None:
        # The precision is a property of labels: chosen on the fold, carried as a probability.
        raw = threshold_for(
            selection.scores,
            selection.labels,
            days=selection.days,
            budget=options.budget,
            precision=options.target_precision,
        )
        cut = float(calibration.predict([raw])[0]) if math.isfinite(raw) else math.inf
        flagged = probabilities >= cut
        threshold = float(scores[flagged].min()) if flagged.any() else math.inf
    else:
        # A budget is a volume: the score that would have flagged ``budget`` payments a day
        # over the days just before the test (the gap; the training window without one),
        # whose payments, not labels, are known when the test begins.
        recent = frame[(stamps >= split.train_end) & (stamps < split.test_start)]
        days = split.gap_days
        if recent.empty:
            recent, days = train, split.train_days
        ranked = np.sort(booster.predict(feature_matrix(recent, features)))[::-1]
        count = min(len(ranked), options.budget * days)
        threshold = float(ranked[count - 1]) if count else math.inf
        flagged = scores >= threshold
        cut = float(calibration.predict([threshold])[0]) if math.isfinite(threshold) else 1.0
    day = pd.to_datetime(test["event_timestamp"], utc=True).dt.strftime("%Y-%m-%d").to_numpy()
    cards = test["card_id"].to_numpy()
    per_day = [
        {
            "day": d,
            "cp_at_k": card_precision_at_k(
                day[day == d], cards[day == d], y[day == d], scores[day == d], options.k
            ),
        }
        for d in sorted(set(day))
    ]
    gains = booster.feature_importance("gain")
    importances = sorted(
        ((name, float(g)) for name, g in zip(features, gains, strict=True) if g > 0),
        key=lambda pair: -pair[1],
    )
    return CheckpointReport(
        checkpoint=checkpoint,
        service=service.name,
        features=len(features),
        train_rows=len(train),
        train_frauds_known=int(y_train.sum()),
        test_rows=len(test),
        test_frauds=int(y.sum()),
        dropped_known_cards=dropped,
        choice=selection.choice,
        folds=[
            {"start": f.start.isoformat(), "end": f.end.isoformat(), "ap": f.ap}
            for f in selection.folds
        ],
        auc=auc_roc(y, scores),
        ap=auc_pr(y, scores),
        cp_at_k=card_precision_at_k(day, cards, y, scores, options.k),
        cp_at_k_per_day=per_day,
        threshold=threshold,
        calibrated_threshold=cut if math.isfinite(cut) else 1.0,
        brier=float(np.mean((probabilities - y) ** 2)),
        expected_frauds_flagged=float(probabilities[flagged].sum()),
        flagged_per_day=float(flagged.sum()) / split.test_days,
        precision=float(y[flagged].mean()) if flagged.any() else None,
        recall=float(flagged[y == 1].mean()) if y.any() else None,
        importances=importances,
        pr_curve=_pr_curve(y, scores),
        booster=booster,
    )


def _without_known_cards(frame: pd.DataFrame, test: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """``test`` without, on each day, the payments of cards whose fraud was known before the
    day began; and how many payments that removed."""
    frauds = frame[frame["label"].astype(bool) & frame["known_at"].notna()]
    known_at = pd.to_datetime(frauds["known_at"], utc=True)
    first_known = pd.Series(known_at.to_numpy(), index=frauds["card_id"].to_numpy())
    first_known = first_known.groupby(level=0).min()
    test_stamps = pd.to_datetime(test["event_timestamp"], utc=True)
    day_start = test_stamps.dt.floor("D")
    known = test["card_id"].map(first_known)
    drop = known.notna() & (known < day_start)
    return test[~drop.to_numpy()], int(drop.sum())


def _pr_curve(y: np.ndarray, scores: np.ndarray, points: int = 200) -> dict[str, list[float]]:
    if not y.any():
        return {"precision": [], "recall": []}
    order = np.argsort(-scores, kind="mergesort")
    hits = np.cumsum(y[order])
    precision = hits / np.arange(1, len(y) + 1)
    recall = hits / y.sum()
    pick = np.unique(np.linspace(0, len(y) - 1, min(points, len(y))).astype(int))
    return {
        "precision": [round(float(p), 5) for p in precision[pick]],
        "recall": [round(float(r), 5) for r in recall[pick]],
    }


# --- the whole run --------------------------------------------------------------------------


@dataclass
class Report:
    file: str
    summary: dict[str, Any]
    options: dict[str, Any]
    checkpoints: list[CheckpointReport]
    seconds: float
    stages: list[tuple[str, float]]

    def as_dict(self) -> dict[str, Any]:
        checkpoints = []
        for c in self.checkpoints:
            body = {k: v for k, v in asdict(c).items() if k != "booster"}
            body["threshold"] = _finite(body["threshold"])
            checkpoints.append(body)
        return {
            "file": self.file,
            "summary": self.summary,
            "options": self.options,
            "checkpoints": checkpoints,
            "seconds": round(self.seconds, 1),
            "stages": [{"stage": s, "seconds": round(t, 1)} for s, t in self.stages],
        }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def run_backtest(
    path: Path,
    options: Options,
    *,
    work: Path,
    progress: Callable[[str], None] = lambda _: None,
) -> Report:
    """Run the whole backtest of ``path`` in the scratch directory ``work`` (the event
    history, snapshots and spine; the caller removes it). Raise ``BacktestError`` for a bad
    file or option before anything is reported."""
    began = time.perf_counter()
    stages: list[tuple[str, float]] = []

    def stage(name: str) -> Callable[[], None]:
        start = time.perf_counter()
        progress(name)
        return lambda: stages.append((name, time.perf_counter() - start))

    if path.is_dir():
        done = stage("reading the history's payments")
        work.mkdir(parents=True, exist_ok=True)
        summary = history_spine(path, work)
        history = path
    else:
        done = stage("reading the file into events")
        summary = file_events(path, work, label_delay=options.label_delay)
        history = work
    done()
    _check_split(options.split, summary)
    config = FeatureConfig(
        project="backtest", registry_url="", online="sqlite", data_dir=work / "features"
    )
    services = [(AUTHORIZATION, FEATURE_SERVICES[options.service])]
    if summary.drivers:
        services.append((CAPTURE, FRAUD_CAPTURE_V1))
    batch_views = list(
        {v.name: v for _, s in services for v in s.views if v.mode == "batch"}.values()
    )
    done = stage("snapshotting the batch views")
    backfill(config, history=history, views=batch_views, snapshot_every=options.snapshot_every)
    done()
    spine = pq.read_table(work / "spine.parquet").to_pandas()
    stamps = pd.to_datetime(spine["event_timestamp"], utc=True)
    # The test, the training window, and the folds that choose the model before them.
    since = min([options.split.train_start, *(w[0] for w in fold_windows(options))])
    spine = spine[(stamps >= since) & (stamps < options.split.test_end)].reset_index(drop=True)
    reports = []
    for checkpoint, service in services:
        done = stage(f"{checkpoint}: features of {len(spine):,} payments")
        frame = checkpoint_frame(config, history, spine, service)
        done()
        done = stage(f"{checkpoint}: model selection, fit and judgement")
        reports.append(
            judge(
                frame, checkpoint, service, options, lambda s, c=checkpoint: progress(f"{c}: {s}")
            )
        )
        done()
        del frame
    return Report(
        file=str(path),
        summary={
            "rows": summary.rows,
            "payments": summary.payments,
            "declined": summary.declined,
            "frauds": summary.frauds,
            "drivers": summary.drivers,
            "first": summary.first.isoformat() if summary.first else None,
            "last": summary.last.isoformat() if summary.last else None,
            "events": summary.events,
        },
        options={**_options_dict(options), "history": path.is_dir()},
        checkpoints=reports,
        seconds=time.perf_counter() - began,
        stages=stages,
    )


def _options_dict(options: Options) -> dict[str, Any]:
    split = options.split
    return {
        "train_start": split.train_start.isoformat(),
        "train_days": split.train_days,
        "gap_days": split.gap_days,
        "test_days": split.test_days,
        "label_delay_days": options.label_delay / DAY,
        "drop_known_cards": options.drop_known_cards,
        "budget": options.budget,
        "target_precision": options.target_precision,
        "k": options.k,
        "folds": options.folds,
        "snapshot_every_hours": options.snapshot_every / timedelta(hours=1),
        "service": options.service,
    }


def _check_split(split: Split, summary: FileSummary) -> None:
    if summary.first is None or summary.last is None:
        raise BacktestError("the file holds no payment")
    if split.train_days < 1 or split.test_days < 1 or split.gap_days < 0:
        raise BacktestError("--train-days and --test-days must be >= 1, --gap-days >= 0")
    if split.train_start < summary.first.replace(hour=0, minute=0, second=0, microsecond=0):
        raise BacktestError(
            f"--train-start {split.train_start:%Y-%m-%d} is before the file's first payment "
            f"({summary.first:%Y-%m-%d %H:%M})"
        )
    if split.test_end > summary.last + DAY:
        raise BacktestError(
            f"the test window ends {split.test_end:%Y-%m-%d}, after the file's last payment "
            f"({summary.last:%Y-%m-%d %H:%M}): choose an earlier --train-start or fewer days"
        )


def day_start(text_value: str) -> datetime:
    """A ``--train-start`` option: a date (or ISO time) in UTC."""
    try:
        moment = datetime.fromisoformat(text_value)
    except ValueError:
        raise BacktestError(f"--train-start {text_value!r} is not a date like 2026-04-01") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- the report as a page -------------------------------------------------------------------


def report_html(report: Report) -> str:
    """A self-contained HTML page of ``report``: figures, then the PR curves, Card Precision@k
    per day and feature importances as PNG images inside the page."""
    body = report.as_dict()
    rows = []
    for c in report.checkpoints:
        rows.append(
            "<tr>"
            f"<th scope='row'>{c.checkpoint}</th><td>{c.test_rows:,}</td><td>{c.test_frauds:,}</td>"
            f"<td>{_fmt(c.auc)}</td><td>{_fmt(c.ap)}</td><td>{_fmt(c.cp_at_k)}</td>"
            f"<td>{c.flagged_per_day:,.1f}</td><td>{_fmt(c.precision)}</td>"
            f"<td>{_fmt(c.recall)}</td><td>{c.calibrated_threshold:.1%}</td>"
            f"<td>{c.expected_frauds_flagged:,.0f}</td></tr>"
        )
    options = body["options"]
    images = "".join(
        f"<figure><img alt='{alt}' src='data:image/png;base64,{png}'><figcaption>{alt}"
        "</figcaption></figure>"
        for alt, png in _plots(report)
    )
    summary = body["summary"]
    name = _escape(Path(report.file).name)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Backtest of {name}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #1d2430; }}
table {{ border-collapse: collapse; margin: 1rem 0; }}
th, td {{ border-bottom: 1px solid #d8dde6; padding: .35rem .7rem; text-align: right; }}
th[scope=row], thead th:first-child {{ text-align: left; }}
figure {{ margin: 1.5rem 0; }} img {{ max-width: 100%; }}
p.note {{ color: #55606e; }}
</style></head><body>
<h1>Backtest of {name}</h1>
<p>{summary["payments"]:,} payments ({summary["frauds"]:,} fraudulent) from
{summary["first"][:10]} to {summary["last"][:10]}. Trained on {options["train_days"]} days from
{options["train_start"][:10]}, tested on {options["test_days"]} days after a gap of
{options["gap_days"]}; {_delay(options)}.
Threshold chosen for {_budget(options)}.</p>
<table><thead><tr><th>checkpoint</th><th>payments tested</th><th>fraud</th><th>AUC ROC</th>
<th>average precision</th><th>Card Precision@{options["k"]}</th><th>flagged a day</th>
<th>precision</th><th>recall</th><th>fraud probability at the threshold</th>
<th>fraud the probabilities expect among the flagged</th></tr></thead>
<tbody>{"".join(rows)}</tbody></table>
<p class="note">Ran in {report.seconds / 60:.1f} minutes.</p>
{images}
</body></html>
"""


def _delay(options: dict[str, Any]) -> str:
    if options.get("history"):
        return "labels known when the history's chargebacks arrived"
    return f"labels known {options['label_delay_days']:g} days after the payment"


def _budget(options: dict[str, Any]) -> str:
    if options["target_precision"] is not None:
        return f"a precision of {options['target_precision']:.0%}"
    return f"{options['budget']} reviews a day"


def _fmt(value: float | None) -> str:
    return "not known" if value is None else f"{value:.3f}"


def _escape(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _plots(report: Report) -> Iterator[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def png(figure) -> str:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        plt.close(figure)
        return base64.b64encode(buffer.getvalue()).decode()

    figure, axes = plt.subplots(figsize=(6, 4))
    for c in report.checkpoints:
        axes.plot(
            c.pr_curve["recall"], c.pr_curve["precision"], label=f"{c.checkpoint} (AP {_fmt(c.ap)})"
        )
    axes.set_xlabel("recall")
    axes.set_ylabel("precision")
    axes.set_ylim(0, 1.02)
    axes.legend()
    yield "Precision against recall on the test window", png(figure)

    figure, axes = plt.subplots(figsize=(6, 3.5))
    for c in report.checkpoints:
        days = [d["day"][5:] for d in c.cp_at_k_per_day]
        axes.plot(
            range(len(days)),
            [d["cp_at_k"] or 0 for d in c.cp_at_k_per_day],
            marker="o",
            label=c.checkpoint,
        )
        axes.set_xticks(range(len(days)), days)
    k = report.options["k"]
    axes.set_ylabel(f"Card Precision@{k}")
    axes.set_ylim(0, 1.02)
    axes.legend()
    yield f"Card Precision@{k} per test day", png(figure)

    for c in report.checkpoints:
        top = c.importances[:15][::-1]
        figure, axes = plt.subplots(figsize=(6, 0.3 * len(top) + 1))
        axes.barh([n for n, _ in top], [g for _, g in top])
        axes.set_xlabel("gain")
        yield f"What the {c.checkpoint} model learned most from", png(figure)
