"""LightGBM training: a binary fraud classifier from a training set, evaluated on a time-based
holdout, optionally warm-started from a parent model.

A training set is a DataFrame with one row per payment: the model's input columns
(``model_features``), a 0/1 label and an event-time column. The holdout is the last share of
rows by event time (no row of the training part is later than any holdout row), so the metrics
say how the model does on payments after the ones it learned from, as in production.

The holdout judges the recipe, then the recipe is refit on every row: a *twin* trained on the
rows before the holdout gives the metrics (and the gates' backtest), and the model that serves
is trained the same way on all of them. Why: labels arrive late, so the newest rows of a
training set are the newest labelled fraud, the very rows a new pattern is in. A model that
never trains on its holdout never sees them: measured in ``benchmarks.learning_loop``, a daily
retrain caught none of an account-takeover wave four days and a hundred labels into it, where
the refit catches most of it the next day (docs/performance.md). It costs a second training.

Training is deterministic: the same rows and parameters give the same model, byte for byte
(``deterministic``, row-wise histograms, fixed seeds, an explicit thread count).

Pure: no Django, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.definitions import FEATURE_SERVICES, FRAUD_SCORING_V1
from features.training import service_features
from ml.drift import references
from ml.evaluate import evaluation

# Stored features that are instants (seconds since the epoch): never model inputs, since a tree
# split on an instant does not carry over to later payments. Their on-demand derivatives
# (is_new_card, minutes_since_signup) carry what they mean.
RAW_TIMESTAMPS = frozenset({"card_added_at", "rider_signed_up_at"})

# Inputs whose growth may only raise a payment's risk: more payments on one card in a window
# never make it safer. LightGBM keeps every tree non-decreasing in them, so a fraudster cannot
# lower a score by paying more often, and a fine-tune on a busier world (the demo's city runs
# 60 times the pace its champion learned) cannot learn that a burst is normal. The behaviour
# gate still checks it of every candidate, including one trained elsewhere.
RISK_INCREASING = ("card_payments_10m", "card_payments_1h", "card_payments_24h")

# Score >= review sends a payment to an analyst, >= decline declines it.
DEFAULT_THRESHOLDS: Mapping[str, float] = {"review": 0.5, "decline": 0.9}


def model_features(service: str = FRAUD_SCORING_V1.name) -> list[str]:
    """Return the model's input columns for ``service``, in order: its stored features, then
    its on-demand features, without the raw timestamps."""
    declared = FEATURE_SERVICES[service]
    names = [name for name, _ in service_features(declared)] + list(declared.on_demand)
    return [name for name in names if name not in RAW_TIMESTAMPS]


@dataclass(frozen=True)
class TrainParams:
    """LightGBM parameters (see ``lightgbm_params``) and the number of boosting rounds."""

    num_boost_round: int = 200
    learning_rate: float = 0.05
    num_leaves: int = 31
    min_data_in_leaf: int = 20
    feature_fraction: float = 0.9
    lambda_l2: float = 1.0
    seed: int = 7
    num_threads: int = 1
    increasing: tuple[str, ...] = RISK_INCREASING

    def lightgbm_params(self, features: Sequence[str] = ()) -> dict[str, Any]:
        """Return LightGBM's parameters; with the model's ``features`` (in order), the
        monotone constraint on those of ``increasing`` it reads."""
        constrained = {}
        if any(name in self.increasing for name in features):
            constrained["monotone_constraints"] = [int(n in self.increasing) for n in features]
        return constrained | {
            "objective": "binary",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.feature_fraction,
            "lambda_l2": self.lambda_l2,
            "seed": self.seed,
            "deterministic": True,
            "force_row_wise": True,
            # The default spawns a thread per core, and OpenMP threads spin: with the scorer and
            # the stream processor on the other core, more threads train far slower than one
            # (docs/performance.md).
            "num_threads": self.num_threads,
            "verbosity": -1,
        }


@dataclass
class TrainResult:
    booster: lgb.Booster
    features: list[str]
    params: dict[str, Any]
    # ``ml.evaluate.evaluation`` on the holdout, plus ``train`` (rows, positives, rate) and the
    # holdout's first instant.
    metrics: dict[str, Any]
    data_start: datetime
    data_end: datetime
    training_rows: int
    holdout_rows: int = field(default=0)
    # The twin trained on the rows before the holdout, which the metrics are of: the gates'
    # backtest judges it on the holdout (``booster`` trained on those rows too). ``booster``
    # itself when the model was not refit.
    twin: lgb.Booster | None = None
    # The holdout's rows the champion did not learn from (every holdout row without ``unseen``).
    window: pd.DataFrame | None = None


def time_split(
    frame: pd.DataFrame,
    *,
    time_column: str,
    holdout_share: float = 0.2,
    unseen: np.ndarray | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ``frame`` by event time: the holdout is the rows at or after the instant where the
    last ``holdout_share`` of rows begins; the rest trains. Rows sharing an instant stay on one
    side, so every training row is strictly earlier than every holdout row.

    With ``unseen`` (per row of ``frame``: the champion did not learn from it,
    ``learned_from``), the holdout is the unseen rows among those, else every unseen row, and
    the rest trains: the twin then learns from every row the champion did (and from older
    rows it did not), so the two are judged on equal terms. Without unseen rows, the plain
    split."""
    train, holdout, _ = _split(frame, time_column, holdout_share, unseen)
    return train, holdout


def _split(
    frame: pd.DataFrame, time_column: str, holdout_share: float, unseen: np.ndarray | None
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """``time_split``, and per holdout row whether it is unseen (all True without
    ``unseen``)."""
    if not 0 < holdout_share < 1:
        raise ValueError(f"holdout_share must be within (0, 1), got {holdout_share}")
    if frame.empty:
        raise ValueError("too few rows to split by time: 0")
    times = pd.to_datetime(frame[time_column], utc=True).to_numpy(dtype="datetime64[ns]")
    order = np.argsort(times, kind="stable")
    ordered, times = frame.iloc[order], times[order]
    holdout = times >= times[int(len(ordered) * (1 - holdout_share))]
    mine = np.ones(len(ordered), dtype=bool)
    if unseen is not None:
        mine = np.asarray(unseen, dtype=bool)[order]
        chosen = mine & holdout
        if not chosen.any():
            chosen = mine
        if chosen.any() and not chosen.all():
            holdout = chosen
    return ordered[~holdout], ordered[holdout], mine[holdout]


def learned_from(
    frame: pd.DataFrame, *, cut: datetime, maturity: timedelta, time_column: str
) -> np.ndarray:
    """Return, per row of the training set ``frame`` (``ml.datasets.with_labels``: with
    ``labelled_at``), whether a model trained at ``cut`` on a set made the same way learned
    from it: a payment matured by then, or a younger one labelled by then. It never saw the
    others: later, or young and unlabelled then (left out)."""
    times = pd.to_datetime(frame[time_column], utc=True)
    at = pd.Timestamp(cut)
    labelled = pd.to_datetime(frame["labelled_at"], utc=True) <= at  # NaT: False
    return ((times <= at - maturity) | (labelled & (times <= at))).to_numpy()


def feature_matrix(frame: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
    """Return ``frame[features]`` as float64, missing values (None, NA) as NaN: LightGBM's
    missing value, online and offline alike."""
    return np.column_stack(
        [
            pd.array(frame[name], dtype="Float64").to_numpy(dtype=np.float64, na_value=np.nan)
            for name in features
        ]
    )


def train_model(
    frame: pd.DataFrame,
    *,
    features: Sequence[str],
    label: str = "label",
    time_column: str = "event_timestamp",
    params: TrainParams | None = None,
    init_model: lgb.Booster | None = None,
    holdout_share: float = 0.2,
    unseen: np.ndarray | None = None,
    refit: bool = True,
    thresholds: Mapping[str, float] = DEFAULT_THRESHOLDS,
    progress: Callable[[float], None] | None = None,
) -> TrainResult:
    """Train a LightGBM binary classifier of ``label`` on ``frame``'s ``features``, in that
    order: a twin on the rows before the last ``holdout_share`` of them by ``time_column``,
    evaluated on that holdout, then (``refit``) the model itself on every row with the same
    parameters and parent. Without ``refit`` the twin is the model. ``unseen`` (per row: the
    champion never learned from it, ``learned_from``) makes the holdout rows the champion
    never saw and the twin's training every row it did (``time_split``): a twin a fifth of the
    rows behind a champion trained yesterday lost to it for being older, not for being worse.
    ``TrainResult.window`` is the holdout less the rows the champion learned from: what the
    backtest may judge the two on.

    With ``init_model`` (a parent booster with the same features), boosting continues from the
    parent's trees: ``params.num_boost_round`` rounds are added. ``progress`` is called with
    the share of rounds done (0 to 1, both trainings) every tenth of them. Return the model,
    its twin, its parameters and the holdout metrics (``ml.evaluate.evaluation`` at
    ``thresholds``).
    """
    params = params or TrainParams()
    features = list(features)
    if init_model is not None and init_model.feature_name() != features:
        raise ValueError("the parent model's features differ from this training set's")
    train, holdout, unseen_holdout = _split(frame, time_column, holdout_share, unseen)
    if train.empty or holdout.empty:
        raise ValueError(f"too few rows to split by time: {len(frame)}")
    parts = 2 if refit else 1
    twin = _boost(train, features, label, params, init_model, _progress_part(progress, 0, parts))
    scores = twin.predict(feature_matrix(holdout, features), num_threads=params.num_threads)
    metrics = evaluation(holdout[label].astype(int).to_numpy(), scores, thresholds)
    y_train = train[label].astype(int).to_numpy()
    metrics["train"] = {
        "rows": len(train),
        "positives": int(y_train.sum()),
        "positive_rate": float(y_train.mean()),
    }
    metrics["holdout_start"] = _instant(holdout[time_column].min()).isoformat()
    metrics["refit"] = refit
    booster = twin
    if refit:
        booster = _boost(
            frame, features, label, params, init_model, _progress_part(progress, 1, parts)
        )
    times = frame[time_column]
    return TrainResult(
        booster=booster,
        features=features,
        params=params.lightgbm_params(features) | {"num_boost_round": params.num_boost_round},
        metrics=metrics,
        data_start=_instant(times.min()),
        data_end=_instant(times.max()),
        training_rows=len(frame) if refit else len(train),
        holdout_rows=len(holdout),
        twin=twin,
        window=holdout[unseen_holdout],
    )


def _progress_part(
    progress: Callable[[float], None] | None, part: int, parts: int
) -> Callable[[float], None] | None:
    """Return ``progress`` for the ``part``-th of ``parts`` equal trainings."""
    if progress is None:
        return None
    return lambda share: progress((part + share) / parts)


def _boost(
    rows: pd.DataFrame,
    features: list[str],
    label: str,
    params: TrainParams,
    init_model: lgb.Booster | None,
    progress: Callable[[float], None] | None,
) -> lgb.Booster:
    dataset = lgb.Dataset(
        feature_matrix(rows, features),
        label=rows[label].astype(int).to_numpy(),
        feature_name=features,
        free_raw_data=False,
    )
    callbacks = []
    if progress is not None:
        rounds = params.num_boost_round
        step = max(1, rounds // 10)

        def report(env: Any) -> None:
            done = env.iteration - env.begin_iteration + 1
            if done % step == 0 or done == rounds:
                progress(done / rounds)

        callbacks.append(report)
    return lgb.train(
        params.lightgbm_params(features),
        dataset,
        num_boost_round=params.num_boost_round,
        init_model=init_model,
        keep_training_booster=False,
        callbacks=callbacks,
    )


def _instant(value: Any) -> datetime:
    stamp = pd.Timestamp(value)
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp).to_pydatetime()


def constant_inputs(frame: pd.DataFrame, features: Sequence[str]) -> list[str]:
    """Return the ``features`` with a single value (or none) in ``frame``."""
    return [name for name in features if frame[name].nunique(dropna=True) <= 1]


def dataset_profile(
    frame: pd.DataFrame, features: Sequence[str], *, time_column: str, label: str = "label"
) -> dict[str, Any]:
    """Return what a training set is, to be kept with its model: rows, positives and their
    share, rows and positives per label source, the event-time span, each feature's share of
    missing values (those with any) and the features with a single value (constant)."""
    y = frame[label].astype(int)
    by_source = frame.groupby("label_source")[label] if "label_source" in frame else None
    nulls: dict[str, float] = {}
    for name in features:
        missing = float(frame[name].isna().mean()) if len(frame) else 0.0
        if missing:
            nulls[name] = round(missing, 4)
    constant = constant_inputs(frame, features)
    return {
        "rows": len(frame),
        "positives": int(y.sum()),
        "positive_rate": float(y.mean()) if len(frame) else 0.0,
        "label_sources": {str(k): int(v) for k, v in by_source.size().items()}
        if by_source is not None
        else {},
        "positives_by_source": {str(k): int(v) for k, v in by_source.sum().items()}
        if by_source is not None
        else {},
        "start": _instant(frame[time_column].min()).isoformat() if len(frame) else None,
        "end": _instant(frame[time_column].max()).isoformat() if len(frame) else None,
        "null_share": nulls,
        "constant": constant,
    }


def newest_rows(frame: pd.DataFrame, count: int, *, time_column: str) -> pd.DataFrame:
    """Return the ``count`` rows of ``frame`` latest by ``time_column`` (ties in frame order),
    in time order: a fine-tune's micro-batch."""
    ordered = frame.sort_values(time_column, kind="mergesort")
    return ordered.iloc[max(0, len(ordered) - count) :]


def fine_tune_batch(
    frame: pd.DataFrame, count: int, *, replay: int, time_column: str, seed: int = 7
) -> pd.DataFrame:
    """Return a fine-tune's micro-batch, in time order: the ``count`` newest rows of ``frame``
    and ``replay`` of the older ones drawn at random (seeded: the same set gives the same
    batch, so a redelivered training registers the same model).

    Why the replay: the newest rows alone are mostly the young labelled fraud and the newest
    assumed negatives, far richer in fraud than the traffic, and a fine-tune on them alone
    fell well below a daily retrain's average precision however it was tuned; older rows drawn
    beside them (rehearsal, continual learning's usual cure for a model that follows its last
    batch) brought it near in a busy world, though not in a small one, where they are most of
    the window (docs/performance.md, learning loop: ``replay`` is a setting to tune)."""
    ordered = frame.sort_values(time_column, kind="mergesort")
    split = max(0, len(ordered) - count)
    older, batch = ordered.iloc[:split], ordered.iloc[split:]
    if replay > 0 and len(older):
        drawn = older.sample(n=min(replay, len(older)), random_state=seed)
        batch = pd.concat([drawn, batch]).sort_values(time_column, kind="mergesort")
    return batch


@dataclass(frozen=True)
class ChainBounds:
    """How far a chain of fine-tunes may go from its last full retrain before the next
    training is a full one again: at most ``max_trees`` trees in all, and the full retrain's
    data no older than ``max_age`` (event time) at the fine-tune's cut."""

    max_trees: int = 400
    max_age: timedelta = timedelta(days=7)


def fine_tune_refusal(
    *,
    parent_trees: int,
    added_trees: int,
    chain_start: datetime,
    as_of: datetime,
    bounds: ChainBounds,
) -> str | None:
    """Return why a fine-tune of a parent with ``parent_trees`` trees, whose chain's full
    retrain ends at ``chain_start``, must not run at ``as_of`` (then a full retrain runs),
    ``None`` when it may."""
    if parent_trees + added_trees > bounds.max_trees:
        return (
            f"the chain would have {parent_trees + added_trees} trees, more than {bounds.max_trees}"
        )
    if as_of - chain_start > bounds.max_age:
        return f"the chain's full retrain is older than {bounds.max_age}"
    return None


def training_reference(
    booster: lgb.Booster, frame: pd.DataFrame, features: Sequence[str]
) -> dict[str, Any]:
    """Return the drift reference of a model trained on ``frame`` (``ml.drift``): each input's
    and the score's bins and shares over the training set."""
    matrix = feature_matrix(frame, features)
    scores = booster.predict(matrix, num_threads=1)
    return references({**{n: matrix[:, i] for i, n in enumerate(features)}, "score": scores})
