"""Offline gates: what a candidate model must pass before it may serve in any role (shadow,
canary, champion). Pure: no Django; the caller gives the boosters and the data.

Four gates, each named, each with its figures and, when it fails, the reason in words:

- **training_data**: no model input was constant in the candidate's training set where the
  champion's training reference saw it vary (a feature zeroed by a broken join trains a model
  that never looks at it), except those the operator names in ``may_be_constant`` (inputs a
  deployment cannot vary: the demo's city, an hour old, has no card older than a day);
- **smoke**, on the golden set kept with the project (``ml/golden/``): the model's inputs are the
  feature service's, in its order; every score is a finite probability; the scores are not all
  one value and flag (at the review threshold) at most ``max_flagged_share`` of the golden
  payments; one payment scores within ``max_row_us`` microseconds;
- **behaviour**, on the golden set: a velocity burst (each card velocity count times ten) raises
  the mean score and lowers at most ``max_exceptions`` of the payments' scores by more than
  ``tolerance``; an innocuous change (one more cent in the card's 24-hour amount) moves at most
  ``max_exceptions`` of them by more than ``tolerance`` (trees are step functions: a split can
  sit exactly there);
- **backtest**, on the newest matured payments the candidate's twin did not train on (its
  holdout; the candidate is the twin's recipe refit on them too, ``ml.train``), against the
  champion on the same payments, none of which the champion learned from either (the caller's
  window: ``TrainResult.window``; a model scored on its own training rows looks better than it
  is, and would keep every fresher rival out). Two models' scores are not on one scale (a
  fine-tune's new trees fit a micro-batch whose balance of fraud is not the traffic's, which
  shifts every score: in the demo, down, so that at the champion's 0.5 it sent two thirds of
  the champion's payments to review at a higher precision and average precision, and was
  rejected on recall). So the candidate is compared at the champion's alert volume: its review
  (decline) threshold is the score of its n-th highest payment of the window, n being how many
  of them the champion sends to review (declines) (``matched_threshold``; not matched when the
  champion flags fewer than ``min_matched``), and the comparison is which payments each sends.
  Average precision, recall at the review threshold and Card Precision@k per day no worse than
  the champion's by more than ``tolerance`` (and, for the first two, beyond chance: worse in
  95 % of bootstrap resamples of the window); its flagged share (more than the champion's
  where its scores tie at the threshold) no more than ``max_flagged_ratio`` times the
  champion's unless its precision is as good (within ``tolerance``). Without a champion the
  candidate's average precision must close at least ``min_gain`` of the gap between chance
  (the fraud rate: what random scores get) and a perfect ranking. Too few positives to tell:
  passed, and said so.

  The matched thresholds are recorded (the model's page shows them), not deployed: a model
  serves at the thresholds in force unless a person sets others. Deployed at them, a chain of
  retrains kept the queue at its first size while a new pattern doubled the fraud, and caught
  a fraction of it (docs/performance.md, learning loop).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from ml.evaluate import auc_pr, card_precision_at_k, precision_recall_at
from ml.train import RISK_INCREASING, feature_matrix

VELOCITY = RISK_INCREASING
INNOCUOUS = "card_amount_cents_24h"


@dataclass(frozen=True)
class GateSettings:
    # The champion's thresholds.
    review_threshold: float = 0.5
    decline_threshold: float = 0.9
    max_flagged_share: float = 0.5
    max_row_us: float = 2000.0
    tolerance: float = 0.05
    max_flagged_ratio: float = 1.5
    min_gain: float = 0.25
    min_positives: int = 5
    max_exceptions: float = 0.02
    k: int = 100
    # The backtest's chance check: a candidate worse than the champion by more than
    # ``tolerance`` fails only if it is worse in ``confidence`` of ``resamples`` bootstrap
    # resamples of the window's payments (a few dozen frauds make 0.05 of recall one or two).
    resamples: int = 200
    confidence: float = 0.95
    seed: int = 7
    may_be_constant: tuple[str, ...] = ()
    # Fewer champion flags than this in the sample: the candidate's thresholds are not matched
    # (a quantile of a handful drifts, and a chain of models would ratchet on it).
    min_matched: int = 10


@dataclass(frozen=True)
class GateResult:
    gate: str
    passed: bool
    figures: dict[str, Any] = field(default_factory=dict)
    reason: str = ""


def gates_passed(results: Sequence[GateResult]) -> bool:
    return all(r.passed for r in results)


def as_records(results: Sequence[GateResult]) -> list[dict[str, Any]]:
    return [asdict(r) for r in results]


def _scores(booster: lgb.Booster, frame: pd.DataFrame) -> np.ndarray:
    return booster.predict(feature_matrix(frame, booster.feature_name()), num_threads=1)


def training_data_gate(
    constant: Sequence[str],
    champion_reference: Mapping[str, Any] | None,
    may_be_constant: Sequence[str] = (),
) -> GateResult:
    """Fail when an input constant in the candidate's training set (its profile's
    ``constant``) varied in the champion's (its reference has more than one bin), unless it is
    one of ``may_be_constant``."""
    if not champion_reference:
        return GateResult("training_data", True, {"constant": list(constant)}, "")
    # Values only: the last share is of missing values, and a feature present or missing
    # with one value when present is as constant as one always present.
    lost = [
        name
        for name in constant
        if name in champion_reference
        and name not in may_be_constant
        and sum(share > 0 for share in champion_reference[name]["shares"][:-1]) > 1
    ]
    figures = {
        "constant": list(constant),
        "varied_for_the_champion": lost,
        "allowed": [name for name in constant if name in may_be_constant],
    }
    if lost:
        return GateResult(
            "training_data",
            False,
            figures,
            f"{', '.join(lost)} never varied in the training set but did for the champion "
            "(a feature lost in the join?)",
        )
    return GateResult("training_data", True, figures)


def smoke_gate(
    booster: lgb.Booster, golden: pd.DataFrame, expected: Sequence[str], rules: GateSettings
) -> GateResult:
    names = booster.feature_name()
    if list(names) != list(expected):
        wrong = next(
            (i for i, (a, b) in enumerate(zip(names, expected, strict=False)) if a != b),
            min(len(names), len(expected)),
        )
        return GateResult(
            "smoke",
            False,
            {"inputs": len(names), "expected": len(expected), "first_difference": wrong},
            f"the model's inputs differ from the feature service's from position {wrong}",
        )
    scores = _scores(booster, golden)
    single = feature_matrix(golden.head(50), names)
    started = time.perf_counter()
    for row in single:
        booster.predict(row.reshape(1, -1), num_threads=1)
    row_us = (time.perf_counter() - started) / max(1, len(single)) * 1e6
    finite = bool(np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all())
    flagged = float((scores >= rules.review_threshold).mean()) if len(scores) else 0.0
    spread = float(np.std(scores)) if len(scores) else 0.0
    figures = {
        "rows": len(scores),
        "finite": finite,
        "score_std": round(spread, 6),
        "flagged_share": round(flagged, 4),
        "row_us": round(row_us, 1),
    }
    problems = []
    if not finite:
        problems.append("a score is not a probability")
    if spread < 1e-6:
        problems.append("every golden payment scores the same")
    if flagged > rules.max_flagged_share:
        problems.append(f"it flags {flagged:.0%} of the golden payments")
    if row_us > rules.max_row_us:
        problems.append(f"one payment takes {row_us:.0f} µs")
    return GateResult("smoke", not problems, figures, "; ".join(problems))


def behaviour_gate(booster: lgb.Booster, golden: pd.DataFrame, rules: GateSettings) -> GateResult:
    base = _scores(booster, golden)
    burst = golden.copy()
    for name in VELOCITY:
        if name in burst:
            burst[name] = pd.array(burst[name], dtype="Float64").fillna(1) * 10
    burst_scores = _scores(booster, burst)
    nudged = golden.copy()
    if INNOCUOUS in nudged:
        nudged[INNOCUOUS] = pd.array(nudged[INNOCUOUS], dtype="Float64").fillna(0) + 1
    nudged_scores = _scores(booster, nudged)
    raised = float(burst_scores.mean() - base.mean())
    lowered = float(np.mean(base - burst_scores > rules.tolerance)) if len(base) else 0.0
    moved = float(np.mean(np.abs(nudged_scores - base) > rules.tolerance)) if len(base) else 0.0
    figures = {
        "burst_mean_change": round(raised, 4),
        "burst_lowered_share": round(lowered, 4),
        "innocuous_moved_share": round(moved, 4),
    }
    problems = []
    if raised <= 0:
        problems.append("a velocity burst does not raise the mean score")
    if lowered > rules.max_exceptions:
        problems.append(f"a velocity burst lowers {lowered:.0%} of the scores")
    if moved > rules.max_exceptions:
        problems.append(f"one more cent moves {moved:.0%} of the scores")
    return GateResult("behaviour", not problems, figures, "; ".join(problems))


def matched_threshold(candidate: np.ndarray, champion: np.ndarray, threshold: float) -> float:
    """Return the candidate's threshold that flags as many of the payments as the champion's
    scores ``champion`` do at ``threshold`` (the same payments' ``candidate`` scores). Where
    its n-th highest score ties with others (a tree model gives whole blocks of payments one
    score), the score of that block or the next higher one, whichever flags a count nearer n:
    always the lower, and a chain of models flagged ever more; always the higher, ever fewer.
    When the champion flags none, ``threshold`` itself."""
    count = int((champion >= threshold).sum())
    if count == 0 or len(candidate) == 0:
        return threshold
    ranked = np.sort(candidate)[::-1]
    at = float(ranked[min(count, len(ranked)) - 1])
    higher = ranked[ranked > at]
    if len(higher):
        flagged_at, flagged_above = int((ranked >= at).sum()), len(higher)
        if count - flagged_above < flagged_at - count:
            at = float(higher[-1])
    return at


def _thresholds_matched(
    mine: np.ndarray, theirs: np.ndarray, rules: GateSettings
) -> dict[str, float]:
    """Return ``{"review", "decline"}``: the candidate's thresholds (its scores ``mine``) that
    flag as many of the payments as the champion's scores ``theirs`` do at its thresholds;
    empty when the champion flags fewer than ``rules.min_matched`` of them."""
    if int((theirs >= rules.review_threshold).sum()) < rules.min_matched:
        return {}
    review = matched_threshold(mine, theirs, rules.review_threshold)
    if (theirs >= rules.decline_threshold).any():
        decline = matched_threshold(mine, theirs, rules.decline_threshold)
    else:  # the champion declines none of them: as far above review as the champion's
        decline = review + (rules.decline_threshold - rules.review_threshold)
    return {"review": review, "decline": min(1.0, max(decline, review))}


def thresholds_of(results: Sequence[GateResult]) -> dict[str, float] | None:
    """Return the thresholds the backtest matched for the candidate (``{"review", "decline"}``),
    or None when it had no champion to match."""
    for result in results:
        if result.gate == "backtest" and "thresholds" in result.figures:
            return dict(result.figures["thresholds"])
    return None


def _performance(
    scores: np.ndarray,
    window: pd.DataFrame,
    rules: GateSettings,
    *,
    threshold: float,
    day: str,
    card: str,
) -> dict[str, Any]:
    y = window["label"].astype(int).to_numpy()
    at = precision_recall_at(y, scores, threshold)
    days = pd.to_datetime(window[day], utc=True).dt.strftime("%Y-%m-%d").to_numpy()
    return {
        "average_precision": auc_pr(y, scores),
        "recall": at["recall"],
        "precision": at["precision"],
        "flagged_share": at["flagged_share"],
        "card_precision_at_k": card_precision_at_k(
            days, window[card].astype(str).to_numpy(), y, scores, rules.k
        ),
    }


def _worse_share(
    metrics: tuple[Any, Any],
    y: np.ndarray,
    mine: np.ndarray,
    theirs: np.ndarray,
    rules: GateSettings,
) -> float:
    """Return the share of bootstrap resamples of the rows (``rules.resamples``, seeded: the
    same data gives the same verdict) where the candidate's metric of its scores ``mine`` is
    below the champion's of ``theirs`` (``metrics``: the two, each at its model's threshold);
    resamples where it is undefined (no fraud drawn) do not count."""
    rng = np.random.default_rng(rules.seed)
    worse = counted = 0
    mine_of, theirs_of = metrics
    for _ in range(rules.resamples):
        rows = rng.integers(0, len(y), len(y))
        a, b = mine_of(y[rows], mine[rows]), theirs_of(y[rows], theirs[rows])
        if a is None or b is None:
            continue
        counted += 1
        worse += a < b
    return worse / counted if counted else 0.0


def backtest_gate(
    candidate: lgb.Booster,
    champion: lgb.Booster | None,
    window: pd.DataFrame,
    rules: GateSettings,
    *,
    day: str = "request_time",
    card: str = "card_id",
) -> GateResult:
    positives = int(window["label"].sum()) if len(window) else 0
    figures: dict[str, Any] = {"rows": len(window), "positives": positives, "k": rules.k}
    cand_scores = _scores(candidate, window) if len(window) else np.array([])
    champ_scores = _scores(champion, window) if champion is not None and len(window) else None
    review = rules.review_threshold
    if champ_scores is not None:
        matched = _thresholds_matched(cand_scores, champ_scores, rules)
        if matched:
            # Judged there: the same number of the window's payments as the champion sends.
            figures["thresholds"] = matched
            review = matched["review"]
    if positives < rules.min_positives:
        return GateResult(
            "backtest", True, figures, f"only {positives} fraud labels in the window: not judged"
        )
    mine = _performance(cand_scores, window, rules, threshold=review, day=day, card=card)
    figures["candidate"] = mine
    problems = []
    if champ_scores is None:
        base = positives / len(window)
        precision = mine["average_precision"] or 0.0
        needed = base + rules.min_gain * (1 - base)
        if precision < needed:
            problems.append(
                f"average precision {precision:.3f} is too close to chance (the fraud rate "
                f"{base:.3f}; at least {needed:.3f} needed)"
            )
        return GateResult("backtest", not problems, figures, "; ".join(problems))
    theirs = _performance(
        champ_scores, window, rules, threshold=rules.review_threshold, day=day, card=card
    )
    figures["champion"] = theirs
    y = window["label"].astype(int).to_numpy()

    def recall_at(threshold: float) -> Any:
        return lambda y, s: precision_recall_at(y, s, threshold)["recall"]

    chance = {
        "average_precision": (auc_pr, auc_pr),
        "recall": (recall_at(review), recall_at(rules.review_threshold)),
    }
    figures["worse_in_resamples"] = {}
    for name, label in (
        ("average_precision", "average precision"),
        ("recall", "recall at the review threshold"),
        ("card_precision_at_k", f"Card Precision@{rules.k}"),
    ):
        a, b = mine[name], theirs[name]
        if a is None or b is None or a >= b - rules.tolerance:
            continue
        text = f"{label} {a:.3f} against the champion's {b:.3f}"
        if name in chance:
            worse = _worse_share(chance[name], y, cand_scores, champ_scores, rules)
            figures["worse_in_resamples"][name] = worse
            if worse < rules.confidence:
                continue  # within chance
            text += f" (worse in {worse:.0%} of {rules.resamples} resamples)"
        problems.append(text)
    # Flagging more (at the threshold it would serve at) is a fault only when the extra flags
    # are worse: after a new pattern appears, the model that learned it flags more payments,
    # rightly.
    at = precision_recall_at(y, cand_scores, review)
    a, b = at["flagged_share"] or 0.0, theirs["flagged_share"] or 0.0
    pa, pb = at["precision"], theirs["precision"]
    if a > max(b * rules.max_flagged_ratio, b + 0.01) and (
        pa is None or pb is None or pa < pb - rules.tolerance
    ):
        precision = "" if pa is None or pb is None else f", precision {pa:.3f} against {pb:.3f}"
        problems.append(f"it flags {a:.1%} of payments against the champion's {b:.1%}{precision}")
    return GateResult("backtest", not problems, figures, "; ".join(problems))


def gates_run(
    booster: lgb.Booster,
    *,
    expected: Sequence[str],
    golden: pd.DataFrame,
    window: pd.DataFrame,
    constant: Sequence[str],
    champion: lgb.Booster | None,
    champion_reference: Mapping[str, Any] | None,
    rules: GateSettings,
    day: str = "request_time",
    twin: lgb.Booster | None = None,
) -> list[GateResult]:
    """Return every gate's result for ``booster``, in order: training_data, smoke, behaviour,
    backtest (of its ``twin``, trained without ``window``, when it was refit on it; of
    ``booster`` otherwise). The last two are not run (and fail) when its inputs are not
    ``expected``: the golden set and the window cannot be read in its order."""
    results = [
        training_data_gate(constant, champion_reference, rules.may_be_constant),
        smoke_gate(booster, golden, expected, rules),
    ]
    if list(booster.feature_name()) != list(expected):
        results += [
            GateResult(name, False, {}, "not run: the model's inputs are not the service's")
            for name in ("behaviour", "backtest")
        ]
        return results
    results.append(behaviour_gate(booster, golden, rules))
    results.append(backtest_gate(twin or booster, champion, window, rules, day=day))
    return results
