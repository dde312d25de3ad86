"""A canary's guardrails: what its decisions on its share of cards may not do that the
champion's on the rest do not, over the same window. Pure: the caller reads the figures.

A guardrail is breached only beyond chance: a share (flagged, declined, degraded) when the lower
end of its 97.5 % Wilson interval is above the champion's share times ``max_ratio`` (or plus
``max_degraded_gap``), so a canary deciding for a few dozen cards is not rolled back for one
unlucky flag; its error rate (the payments it failed to score, which the champion decided) when
the lower end of that interval is above the champion's rate plus ``max_error_gap``; latency
when the canary's p99 is above the champion's times ``max_latency_ratio`` plus
``latency_slack_ms``. Nothing is judged before the canary has ``min_sample`` payments."""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

_Z = NormalDist().inv_cdf(0.975)


@dataclass(frozen=True)
class Figures:
    """One model's decisions over a window."""

    scored: int
    flagged: int
    declined: int
    degraded: int
    latency_p99_ms: float | None
    # Payments it was to decide but failed to score (the champion decided them).
    errors: int = 0

    def share(self, count: int) -> float:
        return count / self.scored if self.scored else 0.0


@dataclass(frozen=True)
class Guardrails:
    min_sample: int = 100
    max_flagged_ratio: float = 2.0
    max_declined_ratio: float = 2.0
    max_degraded_gap: float = 0.05
    max_error_gap: float = 0.01
    max_latency_ratio: float = 1.5
    latency_slack_ms: float = 20.0


def wilson_low(count: int, total: int) -> float:
    """Return the lower end of the 97.5 % one-sided Wilson interval of ``count`` in ``total``."""
    if total <= 0:
        return 0.0
    p = count / total
    centre = p + _Z**2 / (2 * total)
    spread = _Z * math.sqrt(p * (1 - p) / total + _Z**2 / (4 * total**2))
    return max(0.0, (centre - spread) / (1 + _Z**2 / total))


def breaches(canary: Figures, champion: Figures, rules: Guardrails) -> list[str]:
    """Return each guardrail the canary breached, in words (none: it may go on)."""
    if canary.scored < rules.min_sample or champion.scored == 0:
        return []
    found = []
    for what, count, base, ratio in (
        ("flags", canary.flagged, champion.flagged, rules.max_flagged_ratio),
        ("declines", canary.declined, champion.declined, rules.max_declined_ratio),
    ):
        limit = champion.share(base) * ratio
        if wilson_low(count, canary.scored) > limit:
            found.append(
                f"it {what[:-1]}s {canary.share(count):.1%} of its payments against the "
                f"champion's {champion.share(base):.1%} (more than {ratio:g} times beyond chance)"
            )
    gap = champion.share(champion.degraded) + rules.max_degraded_gap
    if wilson_low(canary.degraded, canary.scored) > gap:
        found.append(
            f"{canary.share(canary.degraded):.1%} of its scores are degraded against the "
            f"champion's {champion.share(champion.degraded):.1%}"
        )
    if (
        wilson_low(canary.errors, canary.scored)
        > champion.share(champion.errors) + rules.max_error_gap
    ):
        found.append(
            f"it failed to score {canary.share(canary.errors):.1%} of its payments (the "
            f"champion decided them) against the champion's {champion.share(champion.errors):.1%}"
        )
    if canary.latency_p99_ms is not None and champion.latency_p99_ms is not None:
        limit_ms = champion.latency_p99_ms * rules.max_latency_ratio + rules.latency_slack_ms
        if canary.latency_p99_ms > limit_ms:
            found.append(
                f"its p99 latency is {canary.latency_p99_ms:.0f} ms against the champion's "
                f"{champion.latency_p99_ms:.0f} ms"
            )
    return found
