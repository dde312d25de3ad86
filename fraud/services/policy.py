"""Writes of the lists and rules (``fraud.policy``): entries added and removed, rules saved and
switched. Every write changes what ``fraud.policy_watch`` stamps, so running scorers pick it up
within seconds. Publishes nothing."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from features.definitions import FRAUD_SCORING_V1
from fraud.artifacts import service_feature_names
from fraud.models import ListEntry, Rule
from fraud.policy import RuleRefused, rule_compile, rule_symbols

SERVICE = FRAUD_SCORING_V1.name


class PolicyInvalid(ValueError):
    """A list entry or rule refused: ``errors`` maps each field to what is wrong with it, and
    ``position`` is where in a rule's expression (0-based; None elsewhere)."""

    def __init__(self, errors: dict[str, str], position: int | None = None):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors
        self.position = position


def list_entry_add(
    *,
    kind: str,
    value: str,
    action: str,
    reason: str,
    author: AbstractBaseUser | None,
    stage: str = ListEntry.Stage.BEFORE,
    expires_at: datetime | None = None,
    now: datetime | None = None,
) -> ListEntry:
    """Put ``value`` (a card, rider, device, IP or driver id) on the ``action`` list, replacing
    the entry it had (one live entry per value). Raise ``PolicyInvalid`` for an unknown kind,
    action or stage, an empty value or reason, or an expiry in the past."""
    now = now or timezone.now()
    value, reason = value.strip(), reason.strip()
    errors = {}
    if kind not in ListEntry.Kind.values:
        errors["kind"] = f"Choose one of {', '.join(ListEntry.Kind.values)}."
    if action not in ListEntry.Action.values:
        errors["action"] = f"Choose one of {', '.join(ListEntry.Action.values)}."
    if stage not in ListEntry.Stage.values:
        errors["stage"] = "Choose before or after the model."
    if not value:
        errors["value"] = "Give the id or address to list."
    elif len(value) > 64:
        errors["value"] = "An id holds at most 64 characters."
    if not reason:
        errors["reason"] = "Say why, for whoever reads this entry later."
    if expires_at is not None and expires_at <= now:
        errors["expires_at"] = "An expiry must be in the future."
    if errors:
        raise PolicyInvalid(errors)
    with transaction.atomic():
        ListEntry.objects.filter(kind=kind, value=value, removed_at__isnull=True).update(
            removed_at=now, updated_at=now
        )
        return ListEntry.objects.create(
            kind=kind,
            value=value,
            action=action,
            stage=stage,
            reason=reason[:200],
            author=author,
            expires_at=expires_at,
        )


def list_entry_remove(*, entry: ListEntry, now: datetime | None = None) -> ListEntry:
    """Take ``entry`` off its list (kept, marked removed: scores name the entries they
    matched). Removing a removed entry changes nothing."""
    now = now or timezone.now()
    if entry.removed_at is None:
        entry.removed_at = now
        entry.save(update_fields=["removed_at", "updated_at"])
    return entry


def rule_check(expression: str, service: str = SERVICE):
    """Return ``expression`` compiled (``fraud.policy.rule_compile``); raise ``PolicyInvalid``
    with the expression's error and where it is."""
    try:
        return rule_compile(expression, rule_symbols(tuple(service_feature_names(service))))
    except RuleRefused as exc:
        raise PolicyInvalid({"expression": exc.message}, exc.position) from None


def rule_save(
    *,
    name: str,
    expression: str,
    action: str,
    author: AbstractBaseUser | None,
    priority: int = 100,
    mode: str = Rule.Mode.SHADOW,
    rule: Rule | None = None,
) -> Rule:
    """Create a rule (or change ``rule``) after checking its expression; new rules start in
    shadow unless told. Raise ``PolicyInvalid`` (nothing written) for a bad expression, an
    unknown action or mode, an empty or taken name."""
    name = name.strip()
    errors: dict[str, str] = {}
    position = None
    if not name:
        errors["name"] = "Name the rule."
    elif len(name) > 80:
        errors["name"] = "A name holds at most 80 characters."
    if action not in Rule.Action.values:
        errors["action"] = f"Choose one of {', '.join(Rule.Action.values)}."
    if mode not in Rule.Mode.values:
        errors["mode"] = f"Choose one of {', '.join(Rule.Mode.values)}."
    if not 0 <= priority <= 1_000_000:
        errors["priority"] = "A priority is a whole number from 0 (first)."
    try:
        rule_check(expression)
    except PolicyInvalid as exc:
        errors.update(exc.errors)
        position = exc.position
    if errors:
        raise PolicyInvalid(errors, position)
    target = rule or Rule()
    target.name, target.expression, target.action = name, expression.strip(), action
    target.priority, target.mode = priority, mode
    if rule is None:
        target.author = author
    try:
        with transaction.atomic():
            target.save()
    except IntegrityError:
        raise PolicyInvalid({"name": f"A rule named {name!r} exists already."}) from None
    return target


def rule_mode_set(*, rule: Rule, mode: str) -> Rule:
    """Switch ``rule`` to ``mode`` (active, shadow, off)."""
    if mode not in Rule.Mode.values:
        raise PolicyInvalid({"mode": f"Choose one of {', '.join(Rule.Mode.values)}."})
    rule.mode = mode
    rule.save(update_fields=["mode", "updated_at"])
    return rule
