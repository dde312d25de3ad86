"""A list or rule change reaches a running scorer at its next check, without a restart
(``fraud.policy_watch``), and never before."""

from __future__ import annotations

import pytest

from fraud.policy_watch import PolicyWatcher
from fraud.services.policy import list_entry_add, list_entry_remove, rule_mode_set, rule_save

pytestmark = pytest.mark.django_db


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_changes_are_picked_up_at_the_next_check_and_not_before():
    clock = Clock()
    watcher = PolicyWatcher(service="fraud_scoring_v1", poll_s=2.0, clock=clock)
    assert not watcher.current()
    entry = list_entry_add(kind="card", value="card-9", action="block", reason="r", author=None)
    rule = rule_save(name="big", expression="amount_cents > 9000", action="review", author=None)
    clock.now += 1.0
    assert not watcher.current()  # checked a second ago: not yet
    clock.now += 1.0
    policy = watcher.current()
    assert [e.value for e in policy.entries[("card", "card-9")]] == ["card-9"]
    assert [(r.name, r.shadow) for r in policy.rules] == [("big", True)]
    rule_mode_set(rule=rule, mode="off")
    list_entry_remove(entry=entry)
    clock.now += 2.0
    assert not watcher.current()
