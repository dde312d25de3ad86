"""The value of freshness: how retraining policies keep up with a fraud pattern that appears
mid-run, in a simulated clock.

    python -m benchmarks.learning_loop [--quick] [--days 14] [--drift-day 7] [--plot FILE]

Once: ``manage.py simulate history`` (``--days``, ``--riders``, seed ``--seed``, chargebacks
after a median of ``--label-delay-days``) with the ``--drift-scenario`` (account takeover by
default) off until ``--drift-day`` and on after it at ``--drift-rate`` (its usual rate by
default); every payment's model inputs at its own instant, as the scorer serves them
(``features.training`` over the history: the exactness the sliding-windows work made true), and
every label event.

Then, per policy, an hourly simulated clock from ``--warm-days`` to the end, through the code
the live loop runs: the labels known at each instant (``ml.labels``, by label arrival time), the
training set as ``ml.datasets.with_labels`` makes it (labelled rows, and unlabelled ones as
legitimate once ``--maturity-days`` old), ``ml.train.train_model`` (a full retrain of
``--full-rounds`` trees, or a fine-tune adding ``--fine-tune-rounds`` to a replica of the
serving model on the newest ``--fine-tune-rows`` matured rows and ``--fine-tune-replay-rows``
older ones drawn at random, its chain bounded as in
``ml.train``), the offline gates (``ml.gates``: a rejected candidate never serves) and, for the
triggered policy, ``ml.triggers`` on the figures measured at the instant (recall on payments
whose fraud chargeback is known, PSI of the score and inputs over the last day against the
serving model's reference, time, labels since the last cut). Each hour's payments are scored by
the model serving then. Policies: ``frozen`` (the first model), ``daily`` and ``hourly`` full
retrains, ``fine-tune`` every ``--fine-tune-rows`` newly matured rows, ``triggered``.

Then the bound every policy meets: at 12, 24, ... hours after the drift, the new pattern's
fraud labels known and what a full retrain then catches of its next 12 hours (``--no-bound``
skips it). Printed per policy: average precision, recall at the review threshold (0.5), the
share of payments flagged and its precision, and Card Precision@100 per simulated day, judged
against the simulator's ground truth (the only reader of it); the time from the drift until the
recall over the last day's fraud (the last ``--recall-window-hours``), and that of the new
pattern's fraud alone, is back, for good, to 90 % of its level over the two days before the
drift; the trainings, the models rejected by the gates, and the CPU seconds of training
(LightGBM alone) and of gating the candidates.
``--plot`` writes a PNG of that recall per policy over time.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from simulator.config import SCENARIOS

PRE_DRIFT = timedelta(days=2)
STEP = timedelta(hours=1)
THRESHOLD = 0.5


def _django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DJANGO_DEBUG", "true")
    import django

    django.setup()


@dataclass
class World:
    start: datetime
    drift_at: datetime
    end: datetime
    frame: pd.DataFrame  # every payment: inputs, event_timestamp, card_id, payment_id, is_fraud
    evidence: list  # (payment_id, Evidence), grouped by payment id
    features: list[str]


def world_build(args, work: Path) -> World:
    from django.core.management import call_command

    from features.definitions import BATCH_VIEWS
    from features.offline import backfill
    from features.repo import apply_repo
    from features.store import FeatureConfig, feature_store
    from features.training import training_set
    from ml.datasets import label_evidence, payments_spine
    from ml.train import model_features

    start = datetime(2026, 1, 5, tzinfo=UTC)
    drift_at = start + timedelta(days=args.drift_day)
    history = work / "history"
    call_command(
        "simulate", "history", f"--days={args.days}", f"--seed={args.seed}",
        f"--riders={args.riders}", f"--drivers={max(20, args.riders // 10)}",
        f"--start={start.isoformat()}", f"--drift={args.drift_scenario}@{drift_at.isoformat()}",
        *(
            [f"--scenario={args.drift_scenario}={args.drift_rate or 0}"]
            if args.drift_scenario in SCENARIOS
            else []
        ),
        f"--label-delay-median-days={args.label_delay_days}", f"--out={history}",
        stdout=io.StringIO(),
    )  # fmt: skip
    truth = pd.read_parquet(history / "ground_truth.parquet")
    truth = truth[truth["topic"] == "payments.authorized.v1"][
        ["payment_id", "is_fraud", "scenario"]
    ]
    (history / "ground_truth.parquet").unlink()  # the app's code reads the events alone
    config = FeatureConfig(
        project=f"loop{uuid.uuid4().hex[:8]}",
        registry_url=f"sqlite:///{work / 'registry.sqlite3'}",
        online="sqlite",
        data_dir=work / "features",
    )
    apply_repo(config)
    try:
        backfill(config, history=history, views=BATCH_VIEWS, snapshot_every=timedelta(hours=1))
        frame = training_set(config, payments_spine(history), history=history)
    finally:
        feature_store(config).teardown()
    frame = frame.merge(truth.drop_duplicates("payment_id"), on="payment_id", how="left")
    frame["is_fraud"] = frame["is_fraud"].fillna(False).astype(bool)
    frame["scenario"] = frame["scenario"].fillna("").astype(str)
    frame = frame.sort_values("event_timestamp", kind="mergesort").reset_index(drop=True)
    end = frame["event_timestamp"].max().to_pydatetime()
    return World(start, drift_at, end, frame, label_evidence(history), model_features())


@dataclass
class Served:
    booster: lgb.Booster
    reference: dict
    kind: str
    chain_start: datetime
    trees: int
    cut: datetime  # when it was trained: the rows it learned from are known by it


@dataclass
class Run:
    policy: str
    scores: np.ndarray
    trainings: int = 0
    rejected: int = 0
    cpu_s: float = 0.0  # training alone (LightGBM)
    gate_cpu_s: float = 0.0  # the reference, the constant inputs and the gates of each candidate
    fired: dict[str, int] = field(default_factory=dict)
    rejected_by: dict[str, int] = field(default_factory=dict)


class Loop:
    """One policy's pass over the world's clock."""

    def __init__(self, world: World, args):
        from ml.gates import GateSettings
        from ml.golden import golden_read
        from ml.train import ChainBounds

        self.w, self.args = world, args
        self.times = world.frame["event_timestamp"]
        self.golden = golden_read()
        self.rules = GateSettings()
        self.bounds = ChainBounds()

    def dataset(self, at: datetime) -> pd.DataFrame:
        """The training set at ``at``: payments by then, labels known by then, matured."""
        from ml.datasets import with_labels
        from ml.labels import resolved_frame

        known = resolved_frame(p for p in self.w.evidence if p[1].known_at <= at)
        rows = self.w.frame[self.times <= pd.Timestamp(at)]
        return with_labels(
            rows,
            known,
            time_column="event_timestamp",
            mature_before=at - timedelta(days=self.args.maturity_days),
        )

    def train(self, at: datetime, kind: str, serving: Served | None, run: Run) -> Served | None:
        from ml.gates import gates_run
        from ml.train import (
            TrainParams,
            constant_inputs,
            fine_tune_batch,
            fine_tune_refusal,
            learned_from,
            train_model,
            training_reference,
        )

        data = self.dataset(at)
        constant = constant_inputs(data, self.w.features)  # of the data, not a micro-batch
        init = None
        if kind == "fine_tune" and serving is not None:
            refusal = fine_tune_refusal(
                parent_trees=serving.trees,
                added_trees=self.args.fine_tune_rounds,
                chain_start=serving.chain_start,
                as_of=at,
                bounds=self.bounds,
            )
            if refusal is None:
                init = serving.booster
                data = fine_tune_batch(
                    data,
                    self.args.fine_tune_rows,
                    replay=self.args.fine_tune_replay_rows,
                    time_column="event_timestamp",
                )
        if init is None:
            kind = "full"
        rounds = self.args.fine_tune_rounds if init is not None else self.args.full_rounds
        rate = self.args.fine_tune_learning_rate if init is not None else TrainParams.learning_rate
        began = time.process_time()
        try:
            result = train_model(
                data,
                features=self.w.features,
                params=TrainParams(num_boost_round=rounds, learning_rate=rate),
                init_model=init,
                unseen=None
                if serving is None
                else ~learned_from(
                    data,
                    cut=serving.cut,
                    maturity=timedelta(days=self.args.maturity_days),
                    time_column="event_timestamp",
                ),
            )
        except ValueError:
            return None  # too few rows yet
        run.cpu_s += time.process_time() - began
        began = time.process_time()
        reference = training_reference(result.booster, data, self.w.features)
        gates = gates_run(
            result.booster,
            expected=self.w.features,
            golden=self.golden,
            window=result.window,
            constant=constant,
            champion=serving.booster if serving else None,
            champion_reference=serving.reference if serving else None,
            rules=self.rules,
            day="event_timestamp",
            twin=result.twin,
        )
        run.gate_cpu_s += time.process_time() - began
        run.trainings += 1
        self.last_gates = gates
        if not all(g.passed for g in gates):
            run.rejected += 1
            for g in gates:
                if not g.passed:
                    key = f"{g.gate}: {g.reason.split(' ')[0]}"
                    run.rejected_by[key] = run.rejected_by.get(key, 0) + 1
            return None
        return Served(
            result.booster,
            reference,
            kind,
            chain_start=at if kind == "full" else serving.chain_start,
            trees=result.booster.num_trees(),
            cut=at,
        )

    def run(self, policy: str, decide: Callable) -> Run:
        frame, start = self.w.frame, self.w.start + timedelta(days=self.args.warm_days)
        out = Run(policy, np.full(len(frame), np.nan))
        serving = self.train(start, "full", None, out)
        if serving is None:
            failed = [f"{g.gate}: {g.reason}" for g in self.last_gates if not g.passed]
            raise SystemExit(f"the first model was rejected by the gates: {failed}")
        state = {"last_cut": start, "matured_at_cut": self._matured(start)}
        at = start
        while at < self.w.end:
            hour = (self.times > pd.Timestamp(at)) & (self.times <= pd.Timestamp(at + STEP))
            if hour.any():
                from ml.train import feature_matrix

                out.scores[hour.to_numpy()] = serving.booster.predict(
                    feature_matrix(frame[hour], self.w.features), num_threads=1
                )
            at += STEP
            kind = decide(self, at, serving, state, out)
            if kind is not None:
                trained = self.train(at, kind, serving, out)
                state["last_cut"], state["matured_at_cut"] = at, self._matured(at)
                if trained is not None:
                    serving = trained
        return out

    def _matured(self, at: datetime) -> int:
        return len(self.dataset(at))


def frozen(loop, at, serving, state, run):
    return None


def daily(loop, at, serving, state, run):
    return "full" if at - state["last_cut"] >= timedelta(days=1) else None


def hourly(loop, at, serving, state, run):
    return "full"


def fine_tune(loop, at, serving, state, run):
    return (
        "fine_tune"
        if loop._matured(at) - state["matured_at_cut"] >= loop.args.fine_tune_rows
        else None
    )


def triggered(loop, at, serving, state, run):
    from ml.drift import drift_report
    from ml.labels import CHARGEBACK
    from ml.train import feature_matrix
    from ml.triggers import Observed, TriggerSettings, firings

    rules = TriggerSettings(min_sample=loop.args.min_sample, cooldown=timedelta(hours=6))
    window = at - rules.window
    times = loop.times
    recent = (times > pd.Timestamp(window)) & (times <= pd.Timestamp(at))
    # Recall on payments a fraud chargeback known in the window proved fraud, as scored.
    proved = {
        pid for pid, e in loop.w.evidence
        if e.source == CHARGEBACK and e.fraud and window < e.known_at <= at
    }  # fmt: skip
    mask = loop.w.frame["payment_id"].isin(proved).to_numpy() & ~np.isnan(run.scores)
    recall = float((run.scores[mask] >= THRESHOLD).mean()) if mask.any() else None
    columns = {"score": run.scores[recent.to_numpy() & ~np.isnan(run.scores)]}
    if recent.any():
        matrix = feature_matrix(loop.w.frame[recent], loop.w.features)
        columns.update({n: matrix[:, i] for i, n in enumerate(loop.w.features)})
    labels_since = sum(1 for _, e in loop.w.evidence if state["last_cut"] < e.known_at <= at)
    observed = Observed(
        now=at,
        last_cut=state["last_cut"],
        new_labels=labels_since,
        chargeback_recall=recall,
        chargebacks=int(mask.sum()),
        psi=drift_report(serving.reference, columns) if recent.any() else {},
        drift_sample=len(columns["score"]),
        last_started=state.setdefault("started", {}),
    )
    fired = firings(observed, rules)
    if not fired:
        return None
    first = fired[0]
    state["started"][first.trigger] = at
    run.fired[first.trigger] = run.fired.get(first.trigger, 0) + 1
    return first.kind


POLICIES = {
    "frozen": frozen,
    "daily": daily,
    "hourly": hourly,
    "fine-tune": fine_tune,
    "triggered": triggered,
}


def per_day(world: World, run: Run) -> pd.DataFrame:
    from ml.evaluate import auc_pr, card_precision_at_k

    frame = _scored(world, run)
    rows = []
    for day, part in frame.groupby(frame["event_timestamp"].dt.strftime("%m-%d")):
        y, s = part["is_fraud"].astype(int).to_numpy(), part["score"].to_numpy()
        flagged = part["flagged"].to_numpy()
        rows.append(
            {
                "day": day,
                "ap": auc_pr(y, s),
                "recall": float(flagged[y == 1].mean()) if y.any() else None,
                "flagged": float(flagged.mean()),
                "precision": float(y[flagged].mean()) if flagged.any() else None,
                "cp100": card_precision_at_k(
                    np.zeros(len(part)), part["card_id"].astype(str).to_numpy(), y, s, 100
                ),
            }
        )
    return pd.DataFrame(rows).set_index("day")


def _scored(world: World, run: Run) -> pd.DataFrame:
    """The world's payments the run scored, with their score and whether it was flagged (at
    the review threshold)."""
    frame = world.frame.assign(score=run.scores).dropna(subset=["score"])
    return frame.assign(flagged=frame["score"] >= THRESHOLD)


def recall_since_drift(
    world: World, run: Run, window: timedelta = timedelta(days=1), scenario: str | None = None
) -> pd.Series:
    """Recall at each hour after the drift over the fraud of the last ``window`` (of
    ``scenario`` alone when given: the new pattern's own recall)."""
    frame = _scored(world, run)
    fraud = frame[frame["is_fraud"]]
    if scenario is not None:
        fraud = fraud[fraud["scenario"] == scenario]
    out = {}
    at = world.drift_at + STEP
    while at <= world.end:
        part = fraud[(fraud["event_timestamp"] > at - window) & (fraud["event_timestamp"] <= at)]
        if len(part):
            out[at] = float(part["flagged"].mean())
        at += STEP
    return pd.Series(out, dtype=float)


def level_before(world: World, run: Run) -> float | None:
    """Return the recall over the two days before the drift (None: no fraud scored then)."""
    frame = _scored(world, run)
    before = frame[
        frame["is_fraud"]
        & (frame["event_timestamp"] > world.drift_at - PRE_DRIFT)
        & (frame["event_timestamp"] <= world.drift_at)
    ]
    return float(before["flagged"].mean()) if len(before) else None


def recovery_hours(world: World, since: pd.Series, level: float | None) -> float | None:
    """Return how many hours after the drift the recall ``since`` got back to 90 % of
    ``level`` for good (None: it never did, or there is nothing to compare)."""
    if level is None or since.empty:
        return None
    below = since[since < 0.9 * level]
    if below.empty:
        return 0.0
    if below.index[-1] == since.index[-1]:
        return None
    back = since.index[since.index.get_loc(below.index[-1]) + 1]
    return (back - world.drift_at).total_seconds() / 3600


def learning_bound(loop: Loop, scenario: str, hours: list[int]) -> list[tuple[int, int, float]]:
    """What any retraining could do: at each of ``hours`` after the drift, a full retrain on
    the training set of that instant (no gates, no policy) and its recall over the new
    pattern's payments of the next 12 hours; return (hours, the pattern's fraud labels known,
    recall) for those with any such payment. The labels' delay bounds every policy's recovery
    from below."""
    from ml.train import TrainParams, feature_matrix, train_model

    frame, out = loop.w.frame, []
    for h in hours:
        at = loop.w.drift_at + timedelta(hours=h)
        data = loop.dataset(at)
        known = int(data.loc[data["scenario"] == scenario, "label"].sum())
        nxt = frame[
            (frame["event_timestamp"] > pd.Timestamp(at))
            & (frame["event_timestamp"] <= pd.Timestamp(at + timedelta(hours=12)))
            & (frame["scenario"] == scenario)
        ]
        if nxt.empty:
            continue
        try:
            booster = train_model(
                data,
                features=loop.w.features,
                params=TrainParams(num_boost_round=loop.args.full_rounds),
            ).booster
        except ValueError:
            continue
        scores = booster.predict(feature_matrix(nxt, loop.w.features), num_threads=1)
        out.append((h, known, float((scores >= THRESHOLD).mean())))
    return out


def plot(path: Path, world: World, curves: dict[str, pd.Series]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(9, 4.5))
    for policy, series in curves.items():
        axes.plot([(t - world.drift_at).total_seconds() / 3600 for t in series.index],
                  series.to_numpy(), label=policy)  # fmt: skip
    axes.set_xlabel("hours since the new fraud pattern appeared (simulated)")
    axes.set_ylabel("recall at the review threshold")
    axes.set_ylim(0, 1.02)
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller world: under 3 minutes")
    parser.add_argument("--days", type=float, default=14.0)
    parser.add_argument("--drift-day", type=float, default=7.0)
    parser.add_argument(
        "--drift-scenario",
        default="account_takeover",
        help="a scenario off until the drift, or a named drift (black_friday, fraud_ring)",
    )
    parser.add_argument(
        "--drift-rate",
        type=float,
        default=None,
        help="incidents a simulated day of the drift scenario once on (default: its usual rate)",
    )
    parser.add_argument("--riders", type=int, default=600)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--label-delay-days", type=float, default=1.0)
    parser.add_argument("--maturity-days", type=float, default=3.0)
    parser.add_argument("--warm-days", type=float, default=4.0)
    parser.add_argument("--full-rounds", type=int, default=100)
    parser.add_argument("--fine-tune-rows", type=int, default=1000)
    parser.add_argument("--fine-tune-rounds", type=int, default=20)
    parser.add_argument("--fine-tune-learning-rate", type=float, default=0.05)
    parser.add_argument(
        "--fine-tune-replay-rows",
        type=int,
        default=1000,
        help="older rows drawn at random beside a fine-tune's newest (ML_FINE_TUNE_REPLAY_ROWS)",
    )
    parser.add_argument("--min-sample", type=int, default=10)
    parser.add_argument(
        "--recall-window-hours",
        type=float,
        default=24.0,
        help="the recall whose recovery is timed: over the fraud of the last N hours",
    )
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument(
        "--no-bound",
        dest="bound",
        action="store_false",
        help="skip the bound: what a full retrain at each instant catches of the new pattern",
    )
    parser.add_argument("--plot", type=Path, default=Path("var/benchmarks/learning_loop.png"))
    args = parser.parse_args(argv)
    if args.quick:
        args.days, args.drift_day, args.riders, args.warm_days = 11.0, 7.0, 450, 4.0
        args.label_delay_days, args.maturity_days, args.full_rounds = 0.5, 1.5, 60
        args.fine_tune_rows = 500
        if "--policies" not in " ".join(argv or sys.argv):
            args.policies = "frozen,daily,fine-tune,triggered"
    _django()
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="learning-loop-") as tmp:
        world = world_build(args, Path(tmp))
    frauds = int(world.frame["is_fraud"].sum())
    print(
        f"world: {len(world.frame)} payments, {frauds} fraud, {len(world.evidence)} label events "
        f"over {args.days:g} days; {args.drift_scenario} from day {args.drift_day:g}; "
        f"built in {time.perf_counter() - began:.0f} s",
        flush=True,
    )
    loop = Loop(world, args)
    curves: dict[str, pd.Series] = {}
    summary = []
    for policy in args.policies.split(","):
        t0 = time.perf_counter()
        run = loop.run(policy, POLICIES[policy])
        days = per_day(world, run)
        window = timedelta(hours=args.recall_window_hours)
        since = recall_since_drift(world, run, window)
        curves[policy] = since
        level = level_before(world, run)
        hours = recovery_hours(world, since, level)
        pattern = None
        if args.drift_scenario in SCENARIOS:
            own = recall_since_drift(world, run, window, scenario=args.drift_scenario)
            pattern = (float(own.mean()) if len(own) else None, recovery_hours(world, own, level))
        summary.append((policy, run, level, hours, days, pattern))
        print(f"\n{policy} ({time.perf_counter() - t0:.0f} s)")
        print(days.round(3).T.to_string())
    print(f"\n{'policy':<10} {'AP after':>8} {'recall after':>12} {'flagged':>7} "
          f"{'precision':>9} {'recovered in':>13} "
          f"{'pattern recall':>14} {'pattern back in':>15} "
          f"{'trainings':>9} {'rejected':>8} {'train CPU s':>11} {'gates CPU s':>11}  "
          "fired")  # fmt: skip
    drift_day = world.drift_at.strftime("%m-%d")

    def hours_text(value: float | None) -> str:
        return "never" if value is None else f"{value:.0f} h"

    for policy, run, _level, hours, days, pattern in summary:
        after = days[days.index > drift_day]
        own_recall, own_hours = pattern or (None, None)
        own = "-" if own_recall is None else f"{own_recall:.3f}"
        print(
            f"{policy:<10} {after['ap'].mean():8.3f} {after['recall'].mean():12.3f} "
            f"{after['flagged'].mean():7.3f} {after['precision'].mean():9.3f} "
            f"{hours_text(hours):>13} {own:>14} "
            f"{hours_text(own_hours) if pattern else '-':>15} "
            f"{run.trainings:9d} {run.rejected:8d} {run.cpu_s:11.2f} "
            f"{run.gate_cpu_s:11.1f}  "
            f"{run.fired or ''}"
        )
        if run.rejected_by:
            print(f"{'':<10} rejected by {run.rejected_by}")
    levels = ", ".join(f"{p} {lv:.2f}" for p, _, lv, *_ in summary if lv is not None)
    print(f"(recall before the drift, per policy: {levels})")
    if args.drift_scenario in SCENARIOS and args.bound:
        bound = learning_bound(loop, args.drift_scenario, list(range(12, 97, 12)))
        print(
            "\nthe bound (a full retrain at each instant, no gates): hours after the drift, "
            f"{args.drift_scenario} fraud labels known, its recall over the next 12 hours"
        )
        print("  " + "; ".join(f"{h} h: {k} labels, {r:.2f}" for h, k, r in bound))
    plot(args.plot, world, curves)
    print(f"plot: {args.plot}; {time.perf_counter() - began:.0f} s in all")


if __name__ == "__main__":
    main()
