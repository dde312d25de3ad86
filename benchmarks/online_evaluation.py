"""How many payments an online comparison of models needs: a Thompson-sampling bandit against an
equal-split A/B test, with the rewards arriving late, as labels do.

    python -m benchmarks.online_evaluation [--seeds 50] [--rate 2000] [--no-delay]

Simulated traffic (``--rate`` payments an hour, ``--fraud-rate`` of them fraud) is decided by
two or three models of known quality (``--model name:recall:false_positive_rate``, by default a
champion, a better candidate and a worse one). Each payment's reward (``ml.bandit``: 1 for a
right decision, 0 for fraud missed or a good payment flagged) reaches the experiment late: a
flagged payment's when its review is decided (lognormal, median ``--review-minutes``), a fraud
approved when its chargeback arrives (lognormal, median ``--chargeback-hours``) if that is
before maturity, every other approval at maturity (``--maturity-hours``, counted as
legitimate). Every ``--look-minutes`` of traffic the experiment reads the rewards in and
decides:

- **A/B**: equal shares until the best arm is significantly better than each other
  (``ml.bandit.ab_pick``, alpha 0.05); the fixed horizon a power analysis at 0.8 asks for is printed
  beside it (``ab_sample_size``);
- **bandit**: shares by each arm's chance of being the best (``ml.bandit.thompson``, a floor of
  ``--floor`` each) until one is the best with probability 0.95, both from the same draws;
- **shadow**: every model scores every payment, the champion (the first) decides, and each
  payment's outcome, at maturity, judges them all on the same payment (McNemar on the payments
  two disagree on; decisions correlated by ``--correlation``): what ``ml.shadow`` reports.

Printed per method over ``--seeds`` runs: payments routed until the pick (p50, p90) and
rewards in by then, wrong picks, runs with no pick within ``--max-payments``, and the regret:
the errors made beyond what the best model would have made, over the pick and a horizon of
``--max-payments`` after which the pick takes every payment. ``--no-delay`` rewards at once
(the comparison without label delays). Nothing but numpy; seconds to a minute.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

import numpy as np

from ml.bandit import Arm, ab_pick, ab_sample_size, thompson


@dataclass(frozen=True)
class Model:
    name: str
    recall: float
    false_positive_rate: float

    def error_rate(self, fraud_rate: float) -> float:
        return fraud_rate * (1 - self.recall) + (1 - fraud_rate) * self.false_positive_rate


@dataclass
class Outcome:
    pick: str | None
    routed: int
    rewarded: int
    regret: float  # expected errors beyond the best model's, over the horizon


def _model(text: str) -> Model:
    name, recall, fpr = text.split(":")
    return Model(name, float(recall), float(fpr))


def _delays(rng, count: int, median_hours: float, sigma: float = 0.6) -> np.ndarray:
    return rng.lognormal(math.log(median_hours), sigma, count) if count else np.empty(0)


def run(method: str, models: list[Model], args, seed: int) -> Outcome:
    """One experiment: route, reward late, look, until a pick or ``max_payments``."""
    rng = np.random.default_rng(seed)
    choose = np.random.default_rng(seed + 10_000)  # the bandit's own draws
    k = len(models)
    errors = np.array([m.error_rate(args.fraud_rate) for m in models])
    look_h = args.look_minutes / 60
    # Rewards in flight, appended per look: arrival hour, arm, flagged, reward.
    due: list[tuple[np.ndarray, ...]] = []
    arms = [Arm(m.name) for m in models]
    shares = np.full(k, 1 / k)
    routed = rewarded = 0
    regret, now = 0.0, 0.0
    pick = None
    while routed < args.max_payments:
        now += look_h
        count = min(int(rng.poisson(args.rate * look_h)), args.max_payments - routed)
        per_arm = rng.multinomial(count, shares)
        routed += count
        regret += float(per_arm @ (errors - errors.min()))
        for arm, n in enumerate(per_arm):
            model = models[arm]
            fraud = rng.binomial(n, args.fraud_rate)
            caught = rng.binomial(fraud, model.recall)
            false_flags = rng.binomial(n - fraud, model.false_positive_rate)
            missed, passed = fraud - caught, n - fraud - false_flags
            arms[arm] = arms[arm].decided(flagged=True, count=caught + false_flags)
            arms[arm] = arms[arm].decided(flagged=False, count=missed + passed)
            # In order: caught, false flags (reviewed), missed, passed (approved). A fraud
            # approved is rewarded at maturity, a failure if its chargeback came by then.
            sent = now - look_h * rng.random(n)
            flags = caught + false_flags
            value = np.ones(n, dtype=np.int8)
            value[caught : flags + missed] = 0
            if args.no_delay:
                delay = np.zeros(n)
            else:
                delay = np.concatenate(
                    [
                        _delays(rng, flags, args.review_minutes / 60),
                        np.full(missed + passed, args.maturity_hours),
                    ]
                )
                late = _delays(rng, missed, args.chargeback_hours) > args.maturity_hours
                value[flags : flags + missed] = late  # taken for legitimate at maturity
            flagged = np.zeros(n, dtype=bool)
            flagged[:flags] = True
            due.append((sent + delay, np.full(n, arm), flagged, value))
        at, arm_of, flagged, value = (np.concatenate(x) for x in zip(*due, strict=True))
        arrived = at <= now
        for arm in range(k):
            for flag in (True, False):
                mine = arrived & (arm_of == arm) & (flagged == flag)
                good = int(value[mine].sum())
                arms[arm] = arms[arm].rewarded(flagged=flag, value=1, count=good)
                arms[arm] = arms[arm].rewarded(flagged=flag, value=0, count=int(mine.sum()) - good)
        rewarded += int(arrived.sum())
        kept = ~arrived
        due = [(at[kept], arm_of[kept], flagged[kept], value[kept])]
        if method == "ab":
            pick = ab_pick(arms, min_samples=args.min_samples)
        else:
            step = thompson(
                arms,
                floor=args.floor,
                top_two=args.top_two,
                min_samples=args.min_samples,
                rng=choose,
            )
            pick = step.winner
            shares = np.array(list(step.shares.values()))
        if pick is not None:
            break
    if pick is not None:
        chosen = [m.name for m in models].index(pick)
        regret += (args.max_payments - routed) * (errors[chosen] - errors.min())
    return Outcome(pick, routed, rewarded, regret)


def run_shadow(models: list[Model], args, seed: int) -> Outcome:
    """Every model scores every payment (the first, the champion, decides): each payment's
    outcome, once known, judges all of them on the same payment. Decisions are correlated
    across models (``--correlation``): a shared draw per payment, as models trained on the
    same features share most of their mistakes. The pick: the model with the fewest errors,
    when a McNemar test on the payments where it and each other model disagree is significant
    (alpha 0.05, Bonferroni over the others)."""
    from statistics import NormalDist

    rng = np.random.default_rng(seed)
    k = len(models)
    errors = np.array([m.error_rate(args.fraud_rate) for m in models])
    recall = np.array([m.recall for m in models])
    fpr = np.array([m.false_positive_rate for m in models])
    rho = args.correlation
    critical = NormalDist().inv_cdf(1 - 0.05 / (2 * (k - 1)))
    look_h = args.look_minutes / 60
    due_at: list[np.ndarray] = []
    due_wrong: list[np.ndarray] = []  # per payment, per model: its decision was wrong
    wrong = np.zeros(k)
    discordant = np.zeros((k, k))  # [i, j]: payments i got right and j wrong
    routed = rewarded = 0
    regret, now = 0.0, 0.0
    while routed < args.max_payments:
        now += look_h
        n = min(int(rng.poisson(args.rate * look_h)), args.max_payments - routed)
        routed += n
        regret += n * (errors[0] - errors.min())
        fraud = rng.random(n) < args.fraud_rate
        shared = rng.standard_normal(n)[:, None]
        own = rng.standard_normal((n, k))
        draw = NormalDist().cdf  # correlated uniforms, one per payment and model
        u = np.vectorize(draw)(rho * shared + math.sqrt(1 - rho**2) * own)
        flagged = np.where(fraud[:, None], u < recall, u < fpr)
        mistaken = flagged != fraud[:, None]
        sent = now - look_h * rng.random(n)
        if args.no_delay:
            delay = np.zeros(n)
        else:
            # Every payment counts at maturity, its flags' reviews known or not: counted at
            # their review, the payments the champion flagged would come first and judge the
            # models on its flags alone (with that, a pick came after 122 outcomes).
            delay = np.full(n, args.maturity_hours)
            late = _delays(rng, n, args.chargeback_hours) > args.maturity_hours
            # A fraud the champion approved whose chargeback comes after maturity is taken for
            # legitimate.
            unseen = fraud & ~flagged[:, 0] & late
            mistaken = np.where(unseen[:, None], flagged, mistaken)
        due_at.append(sent + delay)
        due_wrong.append(mistaken)
        at, errs = np.concatenate(due_at), np.concatenate(due_wrong)
        arrived = at <= now
        known = errs[arrived]
        wrong += known.sum(axis=0)
        discordant += (~known).T.astype(float) @ known.astype(float)
        rewarded += int(arrived.sum())
        due_at, due_wrong = [at[~arrived]], [errs[~arrived]]
        if rewarded < args.min_samples:
            continue
        best = int(wrong.argmin())
        b, c = discordant[best], discordant[:, best]
        if all(
            (b[j] - c[j]) / math.sqrt(b[j] + c[j]) > critical if b[j] + c[j] else False
            for j in range(k)
            if j != best
        ):
            regret += (args.max_payments - routed) * (errors[best] - errors.min())
            return Outcome(models[best].name, routed, rewarded, regret)
    return Outcome(None, routed, rewarded, regret)


def _summary(method: str, outcomes: list[Outcome], best: str) -> str:
    picked = [o for o in outcomes if o.pick is not None]
    wrong = sum(o.pick != best for o in picked)
    routed = np.array([o.routed for o in picked]) if picked else np.array([np.nan])
    rewards = np.array([o.rewarded for o in picked]) if picked else np.array([np.nan])
    regret = np.array([o.regret for o in outcomes])
    return (
        f"{method:<8} {np.nanmedian(routed):>12,.0f} {np.nanpercentile(routed, 90):>12,.0f} "
        f"{np.nanmedian(rewards):>12,.0f} {wrong:>6d} {len(outcomes) - len(picked):>9d} "
        f"{np.median(regret):>12,.0f}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        action="append",
        type=_model,
        help="name:recall:false_positive_rate (repeat; default: champion, better, worse)",
    )
    parser.add_argument("--fraud-rate", type=float, default=0.01)
    parser.add_argument("--rate", type=float, default=2000.0, help="payments an hour")
    parser.add_argument("--review-minutes", type=float, default=10.0)
    parser.add_argument("--chargeback-hours", type=float, default=24.0)
    parser.add_argument("--maturity-hours", type=float, default=72.0)
    parser.add_argument("--look-minutes", type=float, default=60.0)
    parser.add_argument("--floor", type=float, default=0.02)
    parser.add_argument("--top-two", type=float, default=0.0, help="share to each runner-up")
    parser.add_argument("--min-samples", type=int, default=100)
    parser.add_argument("--max-payments", type=int, default=2_000_000)
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--no-delay", action="store_true")
    parser.add_argument(
        "--correlation", type=float, default=0.8, help="of the models' decisions (shadow)"
    )
    args = parser.parse_args(argv)
    models = args.model or [
        Model("champion", 0.80, 0.010),
        Model("better", 0.88, 0.009),
        Model("worse", 0.70, 0.015),
    ]
    rates = {m.name: 1 - m.error_rate(args.fraud_rate) for m in models}
    best = max(rates, key=rates.get)
    for m in models:
        print(
            f"{m.name:<10} recall {m.recall:.2f}, false positives {m.false_positive_rate:.3%}: "
            f"errors {1 - rates[m.name]:.3%} of payments"
        )
    delays = (
        "rewards at once"
        if args.no_delay
        else f"reviews ~{args.review_minutes:g} min, chargebacks ~{args.chargeback_hours:g} h, "
        f"maturity {args.maturity_hours:g} h"
    )
    print(
        f"{args.rate:,.0f} payments an hour, {args.fraud_rate:.1%} fraud, {delays}; "
        f"{args.seeds} seeds; the A/B test's fixed horizon (power 0.8): "
        f"{ab_sample_size(rates):,} payments"
    )
    print(
        f"{'method':<8} {'routed p50':>12} {'routed p90':>12} {'rewards p50':>12} "
        f"{'wrong':>6} {'undecided':>9} {'regret p50':>12}"
    )
    results = {}
    for method in ("ab", "bandit"):
        results[method] = [run(method, models, args, seed) for seed in range(args.seeds)]
        print(_summary(method, results[method], best), flush=True)
    results["shadow"] = [run_shadow(models, args, seed) for seed in range(args.seeds)]
    print(_summary("shadow", results["shadow"], best), flush=True)
    ab = np.median([o.routed for o in results["ab"] if o.pick is not None] or [np.nan])
    bandit = np.median([o.routed for o in results["bandit"] if o.pick is not None] or [np.nan])
    horizon = ab_sample_size(rates)
    shadow = np.median([o.routed for o in results["shadow"] if o.pick is not None] or [np.nan])
    print(
        f"payments to a pick, p50: the A/B test until significance {ab / bandit:.1f}x the "
        f"bandit's, the A/B test's fixed horizon {horizon / bandit:.1f}x; the bandit "
        f"{bandit / shadow:.1f}x the shadow comparison's"
    )


if __name__ == "__main__":
    main()
