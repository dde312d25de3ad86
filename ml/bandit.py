"""Online evaluation's statistics: Thompson sampling over deployed models with delayed rewards,
and the fixed-split A/B test it is measured against. Pure: no Django, no I/O.

**The reward** of one payment decided by one model is 1 when its decision was right and 0 when
it was wrong, once the payment's outcome is known:

- a flag (review or decline) of a payment that proved fraud (an analyst's "fraud" or a
  chargeback): 1, known when the review is decided (minutes);
- a flag of a legitimate payment (an analyst's "legitimate"): 0, a good payment sent to
  review, known when the review is decided;
- an approval of a legitimate payment (no chargeback by maturity): 1, known at maturity (days);
- an approval of a fraud (a chargeback by maturity): 0, fraud missed, known at maturity.

So a model's reward rate is one less its error rate, both kinds counted alike; a flagged
payment's reward comes in minutes and an approved one's in days, and the evidence is updated
as each arrives (``Arm.rewarded``), kept apart by decision (``Arm``, why).

**Thompson sampling** (randomised probability matching): each model's share of the traffic is
the probability, under Beta posteriors, that it is the best (``best_chances``, by Monte Carlo
draws), with a floor per arm so none starves before the evidence is in. It stops when one arm
is the best with probability ``confidence``. ``thompson`` does both from one set of draws.

**The A/B test** splits the traffic equally and stops at the first look where the best arm's
estimated reward rate is above every other's by a z-test at ``alpha`` (Bonferroni over the
others: ``ab_pick``); ``ab_sample_size`` is the fixed horizon a power analysis asks for.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from statistics import NormalDist

import numpy as np

_NORMAL = NormalDist()


def reward(*, flagged: bool, is_fraud: bool) -> int:
    """Return the reward of a decision once the payment's outcome is known: 1 when a flag
    caught fraud or an approval let a legitimate payment through, 0 otherwise."""
    return int(flagged == is_fraud)


@dataclass(frozen=True)
class Arm:
    """One model's evidence: how many payments it flagged and approved (known at once), and the
    rewards of those whose outcome is known, apart by decision (a flag's comes at its review, an
    approval's at maturity).

    Why apart: the rewards that come first are the flags', and a flag is wrong far more often
    than an approval, so pooled they would make every model look worse early and rank models
    by their precision alone until the approvals mature (docs/performance.md: pooled, a
    quarter of the bandit's picks were wrong). Apart, the
    reward rate is the flagged share times the flags' rate plus the approved share times the
    approvals' rate, and an arm with no matured approval is as uncertain as it should be."""

    name: str
    flagged: int = 0
    approved: int = 0
    flag_right: float = 0.0
    flag_wrong: float = 0.0
    approval_right: float = 0.0
    approval_wrong: float = 0.0

    @property
    def samples(self) -> float:
        """Rewards received."""
        return self.flag_right + self.flag_wrong + self.approval_right + self.approval_wrong

    def decided(self, *, flagged: bool, count: int = 1) -> Arm:
        """Return the evidence after ``count`` decisions (their rewards come later)."""
        if flagged:
            return replace(self, flagged=self.flagged + count)
        return replace(self, approved=self.approved + count)

    def rewarded(self, *, flagged: bool, value: int, count: int = 1) -> Arm:
        """Return the evidence after ``count`` rewards ``value`` (1 or 0) of flags or
        approvals."""
        if value not in (0, 1):
            raise ValueError(f"a reward is 0 or 1, got {value!r}")
        field = ("flag_" if flagged else "approval_") + ("right" if value else "wrong")
        return replace(self, **{field: getattr(self, field) + count})

    def rate_draws(self, rng: np.random.Generator, draws: int) -> np.ndarray:
        """Return ``draws`` draws of the reward rate from the posterior: Beta(1, 1) priors on
        the flagged share, the flags' rate and the approvals' rate."""
        share = rng.beta(1 + self.flagged, 1 + self.approved, draws)
        flags = rng.beta(1 + self.flag_right, 1 + self.flag_wrong, draws)
        approvals = rng.beta(1 + self.approval_right, 1 + self.approval_wrong, draws)
        return share * flags + (1 - share) * approvals

    def rate(self) -> tuple[float, float] | None:
        """Return the estimated reward rate and its variance (the flagged share taken as
        known), or ``None`` while either decision has no reward yet."""
        flags = self.flag_right + self.flag_wrong
        approvals = self.approval_right + self.approval_wrong
        decided = self.flagged + self.approved
        if not flags or not approvals or not decided:
            return None
        share = self.flagged / decided
        pf, pa = self.flag_right / flags, self.approval_right / approvals
        mean = share * pf + (1 - share) * pa
        variance = share**2 * pf * (1 - pf) / flags + (1 - share) ** 2 * pa * (1 - pa) / approvals
        return mean, variance


def _ranks(arms: Sequence[Arm], draws: int, rng: np.random.Generator) -> np.ndarray:
    """Return, per joint draw of the posteriors, the arms from best to worst."""
    if not arms:
        raise ValueError("no arms")
    sampled = np.column_stack([arm.rate_draws(rng, draws) for arm in arms])
    return np.argsort(-sampled, axis=1, kind="stable")


def best_chances(arms: Sequence[Arm], *, draws: int = 4000, rng: np.random.Generator) -> np.ndarray:
    """Return, per arm, the probability that its reward rate is the highest, estimated from
    ``draws`` joint draws of the posteriors."""
    return np.bincount(_ranks(arms, draws, rng)[:, 0], minlength=len(arms)) / draws


@dataclass(frozen=True)
class Thompson:
    """One Thompson-sampling step over the arms, from one set of joint draws: each arm's
    chance of being the best, its share of the traffic, and the arm picked, if any."""

    chances: dict[str, float]
    shares: dict[str, float]
    winner: str | None


def thompson(
    arms: Sequence[Arm],
    *,
    floor: float = 0.05,
    top_two: float = 0.0,
    confidence: float = 0.95,
    min_samples: int = 100,
    draws: int = 4000,
    rng: np.random.Generator,
) -> Thompson:
    """Return, from ``draws`` joint draws of the posteriors: each arm's chance of being the
    best; its share of the traffic, that chance lifted so that no arm gets less than ``floor``
    (the exploration floor; shares sum to 1); and the arm that is the best with probability
    ``confidence`` once every arm has ``min_samples`` rewards (else ``None``: the experiment
    goes on). The pick and the shares come from the same draws, so what is recorded of a step
    is what decided it.

    ``top_two`` (0 to 1) gives that part of the traffic to each draw's runner-up instead of its
    winner (top-two Thompson sampling): plain Thompson sampling starves the best arm's
    closest rival, so the evidence that the best is the best comes slowly."""
    if not 0 <= floor * len(arms) <= 1:
        raise ValueError(f"a floor of {floor} for {len(arms)} arms leaves nothing to allocate")
    ranks = _ranks(arms, draws, rng)
    chances = np.bincount(ranks[:, 0], minlength=len(arms)) / draws
    allotted = (1 - top_two) * chances
    if top_two and len(arms) > 1:
        allotted = allotted + top_two * np.bincount(ranks[:, 1], minlength=len(arms)) / draws
    shares = floor + (1 - floor * len(arms)) * allotted
    best = int(chances.argmax())
    sure = chances[best] >= confidence and all(a.samples >= min_samples for a in arms)
    return Thompson(
        chances={arm.name: float(c) for arm, c in zip(arms, chances, strict=True)},
        shares={arm.name: float(share) for arm, share in zip(arms, shares, strict=True)},
        winner=arms[best].name if sure else None,
    )


def allocation(
    arms: Sequence[Arm],
    *,
    floor: float = 0.05,
    top_two: float = 0.0,
    draws: int = 4000,
    rng: np.random.Generator,
) -> dict[str, float]:
    """Return each arm's share of the traffic (``thompson``)."""
    return thompson(arms, floor=floor, top_two=top_two, draws=draws, rng=rng).shares


def bandit_pick(
    arms: Sequence[Arm],
    *,
    confidence: float = 0.95,
    min_samples: int = 100,
    draws: int = 4000,
    rng: np.random.Generator,
) -> str | None:
    """Return the arm that is the best with probability ``confidence`` once every arm has
    ``min_samples`` rewards, else ``None`` (``thompson``)."""
    if any(a.samples < min_samples for a in arms):
        return None
    return thompson(
        arms, floor=0.0, confidence=confidence, min_samples=min_samples, draws=draws, rng=rng
    ).winner


def ab_pick(arms: Sequence[Arm], *, alpha: float = 0.05, min_samples: int = 100) -> str | None:
    """Return the arm with the highest estimated reward rate (``Arm.rate``) when it is
    significantly above every other's (two-sided z-tests at ``alpha`` divided among the
    comparisons), else ``None``."""
    if len(arms) < 2 or any(a.samples < min_samples for a in arms):
        return None
    rates = [arm.rate() for arm in arms]
    if any(r is None for r in rates):
        return None
    best = max(range(len(arms)), key=lambda i: rates[i][0])
    critical = _NORMAL.inv_cdf(1 - alpha / (2 * (len(arms) - 1)))
    for i, (mean, variance) in enumerate(rates):
        if i == best:
            continue
        spread = math.sqrt(rates[best][1] + variance)
        if spread == 0 or (rates[best][0] - mean) / spread <= critical:
            return None
    return arms[best].name


def ab_sample_size(
    rates: Mapping[str, float] | Sequence[float], *, alpha: float = 0.05, power: float = 0.8
) -> int:
    """Return the payments an equal-split A/B test of arms with these reward rates needs in all
    (a fixed horizon: two-sided test at ``alpha`` per comparison, Bonferroni over the arms, at
    ``power`` for the smallest gap between the best and another)."""
    values = sorted(rates.values() if isinstance(rates, Mapping) else rates, reverse=True)
    if len(values) < 2:
        raise ValueError("an A/B test needs two arms or more")
    best, second = values[0], values[1]
    if best == second:
        raise ValueError("equal rates: no sample size detects a gap of zero")
    z_alpha = _NORMAL.inv_cdf(1 - alpha / (2 * (len(values) - 1)))
    z_power = _NORMAL.inv_cdf(power)
    variance = best * (1 - best) + second * (1 - second)
    per_arm = (z_alpha + z_power) ** 2 * variance / (best - second) ** 2
    return math.ceil(per_arm) * len(values)
