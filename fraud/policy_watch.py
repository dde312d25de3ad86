"""The lists and rules a running scorer applies, reloaded when they change: a list entry or
rule saved reaches every scorer within ``poll_s`` seconds (``FRAUD_POLICY_POLL_SECONDS``, 2),
without a restart."""

from __future__ import annotations

import logging
import time
from typing import Any

from django.db.models import Count, Max
from django.utils import timezone

from features.windows import to_us
from fraud.artifacts import service_feature_names
from fraud.models import ListEntry, Rule
from fraud.policy import Entry, Policy, PolicyRule, RuleRefused, rule_compile, rule_symbols

log = logging.getLogger(__name__)


def policy_stamp() -> tuple:
    """Return what changes whenever an entry or a rule is added, changed or removed."""
    entries = ListEntry.objects.aggregate(n=Count("id"), latest=Max("updated_at"))
    rules = Rule.objects.aggregate(n=Count("id"), latest=Max("updated_at"))
    return entries["n"], entries["latest"], rules["n"], rules["latest"]


def policy_load(service: str) -> Policy:
    """Return the entries not removed nor expired and the rules not switched off, compiled
    against ``service``'s features (a rule that no longer compiles is skipped, and said)."""
    now = timezone.now()
    entries = [
        Entry(
            id=e.id,
            kind=e.kind,
            value=e.value,
            action=e.action,
            stage=e.stage,
            expires_us=None if e.expires_at is None else to_us(e.expires_at),
        )
        for e in ListEntry.objects.filter(removed_at__isnull=True).exclude(expires_at__lte=now)
    ]
    symbols = rule_symbols(tuple(service_feature_names(service)))
    rules = []
    for rule in Rule.objects.exclude(mode=Rule.Mode.OFF):
        try:
            compiled = rule_compile(rule.expression, symbols)
        except RuleRefused as exc:
            log.error("fraud-scorer: rule %r skipped: %s", rule.name, exc.message)
            continue
        rules.append(
            PolicyRule(
                id=rule.id,
                name=rule.name,
                action=rule.action,
                priority=rule.priority,
                shadow=rule.mode == Rule.Mode.SHADOW,
                compiled=compiled,
            )
        )
    return Policy.build(entries, rules)


class PolicyWatcher:
    """Holds the policy in force; ``current()`` reloads it when the tables changed, checking at
    most every ``poll_s`` seconds (two aggregate queries). Entries that expire between two
    loads are dropped by ``policy_apply`` itself (it checks each entry's expiry)."""

    def __init__(self, *, service: str, poll_s: float = 2.0, clock: Any = time.monotonic):
        self.service = service
        self.poll_s = poll_s
        self.clock = clock
        self.policy = Policy()
        self._stamp: object = object()
        self._checked = -float("inf")

    def current(self) -> Policy:
        now = self.clock()
        if now - self._checked < self.poll_s:
            return self.policy
        self._checked = now
        stamp = policy_stamp()
        if stamp != self._stamp:
            self._stamp = stamp
            self.policy = policy_load(self.service)
            log.info(
                "fraud-scorer: %d list entries and %d rules in force",
                sum(len(v) for v in self.policy.entries.values()), len(self.policy.rules),
            )  # fmt: skip
        return self.policy
