"""Online evaluation's statistics (``ml.bandit``): the reward of each decision outcome, the
posteriors kept apart by decision, Thompson allocation with its floor, both stop rules and the
A/B test's fixed horizon. Pure: no database."""

from __future__ import annotations

import numpy as np
import pytest

from ml.bandit import (
    Arm,
    ab_pick,
    ab_sample_size,
    allocation,
    bandit_pick,
    best_chances,
    reward,
)


def _arm(name: str, *, flags: int, precision: float, approvals: int, missed: float) -> Arm:
    """An arm with ``flags`` flags reviewed (``precision`` of them fraud) and ``approvals``
    approvals matured (``missed`` of them fraud)."""
    right_flags = round(flags * precision)
    missed_count = round(approvals * missed)
    return Arm(
        name,
        flagged=flags,
        approved=approvals,
        flag_right=right_flags,
        flag_wrong=flags - right_flags,
        approval_right=approvals - missed_count,
        approval_wrong=missed_count,
    )


def test_the_reward_is_one_for_a_right_decision_and_zero_for_either_error():
    assert reward(flagged=True, is_fraud=True) == 1
    assert reward(flagged=False, is_fraud=False) == 1
    assert reward(flagged=True, is_fraud=False) == 0  # a good payment sent to review
    assert reward(flagged=False, is_fraud=True) == 0  # fraud missed


def test_rewards_are_kept_apart_by_decision_and_weighed_by_the_decision_shares():
    arm = Arm("m").decided(flagged=True, count=20).decided(flagged=False, count=980)
    arm = arm.rewarded(flagged=True, value=1, count=10).rewarded(flagged=True, value=0, count=10)
    assert arm.rate() is None  # no approval matured yet: no estimate
    arm = arm.rewarded(flagged=False, value=1, count=990).rewarded(flagged=False, value=0, count=10)

    mean, variance = arm.rate()

    # 2 % flagged at precision 0.5, 98 % approved of which 1 % fraud.
    assert mean == pytest.approx(0.02 * 0.5 + 0.98 * 0.99)
    assert variance == pytest.approx(0.02**2 * 0.25 / 20 + 0.98**2 * 0.99 * 0.01 / 1000)
    assert arm.samples == 1020
    with pytest.raises(ValueError, match="0 or 1"):
        arm.rewarded(flagged=True, value=2)


def test_early_flag_rewards_alone_do_not_make_a_model_look_certain():
    # Two models alike but for their precision, no approval matured: the approvals' rate,
    # 98 % of the traffic, is unknown, so neither is the best with any confidence.
    rng = np.random.default_rng(1)
    sharp = _arm("sharp", flags=200, precision=0.9, approvals=0, missed=0).decided(
        flagged=False, count=9800
    )
    blunt = _arm("blunt", flags=200, precision=0.3, approvals=0, missed=0).decided(
        flagged=False, count=9800
    )

    chances = best_chances([sharp, blunt], rng=rng)

    assert 0.3 < chances[0] < 0.7
    assert bandit_pick([sharp, blunt], rng=rng) is None


def test_thompson_allocation_favours_the_better_arm_and_keeps_the_floor():
    rng = np.random.default_rng(2)
    good = _arm("good", flags=300, precision=0.6, approvals=20_000, missed=0.002)
    bad = _arm("bad", flags=300, precision=0.3, approvals=20_000, missed=0.006)
    unknown = Arm("unknown")

    shares = allocation([good, bad, unknown], floor=0.05, rng=rng)

    assert sum(shares.values()) == pytest.approx(1.0)
    assert shares["good"] > 0.5
    assert shares["bad"] == pytest.approx(0.05, abs=0.01)
    assert min(shares.values()) >= 0.05
    with pytest.raises(ValueError, match="leaves nothing"):
        allocation([good, bad, unknown], floor=0.4, rng=rng)


def test_top_two_gives_the_runner_up_its_part():
    rng = np.random.default_rng(3)
    arms = [
        _arm("best", flags=300, precision=0.6, approvals=20_000, missed=0.002),
        _arm("close", flags=300, precision=0.55, approvals=20_000, missed=0.0025),
        _arm("far", flags=300, precision=0.2, approvals=20_000, missed=0.02),
    ]

    plain = allocation(arms, floor=0.0, rng=rng)
    top_two = allocation(arms, floor=0.0, top_two=0.5, rng=rng)

    assert top_two["close"] > plain["close"] + 0.2
    assert top_two["far"] < 0.01


def test_the_bandit_picks_the_clear_winner_only_after_the_minimum_sample():
    rng = np.random.default_rng(4)
    good = _arm("good", flags=300, precision=0.7, approvals=30_000, missed=0.001)
    bad = _arm("bad", flags=300, precision=0.3, approvals=30_000, missed=0.008)

    assert bandit_pick([good, bad], rng=rng) == "good"
    assert bandit_pick([good, bad], min_samples=100_000, rng=rng) is None


def test_the_ab_test_picks_only_a_significant_winner():
    good = _arm("good", flags=300, precision=0.7, approvals=30_000, missed=0.001)
    bad = _arm("bad", flags=300, precision=0.3, approvals=30_000, missed=0.008)
    twin = _arm("twin", flags=300, precision=0.7, approvals=30_000, missed=0.0012)

    assert ab_pick([bad, good]) == "good"
    assert ab_pick([good, twin]) is None  # a gap within chance
    assert ab_pick([good, Arm("new")]) is None  # too few samples


def test_the_ab_fixed_horizon_is_the_textbook_sample_size():
    # Two arms at 0.10 and 0.15, alpha 0.05 two-sided, power 0.8: 683 per arm (unpooled).
    assert ab_sample_size([0.85, 0.90]) == 2 * 683
    # A third arm: Bonferroni's alpha / 2, and three arms to fill.
    assert ab_sample_size([0.85, 0.90, 0.5]) > 3 * 683
    with pytest.raises(ValueError, match="gap of zero"):
        ab_sample_size([0.9, 0.9])
