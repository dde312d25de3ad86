"""Rules and lists: what the scorer applies beside the model, and how.

- **Lists** of cards, riders, devices, IPs and drivers, each entry ``block``, ``review`` or
  ``allow``, declared ``before`` or ``after`` the model: an entry *before* the model decides
  whatever the model says (a blocked card is declined, an allowed one approved); *after*, it
  only moves the model's decision one way (``block`` declines, ``review`` reviews what the model
  approved, ``allow`` approves what the model sent to review, never a decline).
- **Rules** are expressions over the served features and the request in rule-engine's language
  (``card_payments_10m >= 5 and amount_cents > 3000``), parsed and type-checked by rule-engine
  (no ``eval``: an unknown name, a type mismatch or a syntax error is refused with where it is).
  The one matching active rule with the lowest ``priority`` acts as an *after* entry does
  (``review`` never lowers a decline); shadow rules are evaluated and recorded, never acted on.
  A rule does not match a payment missing a value it needs, or dividing by zero, unless the
  other side of an ``or`` (``and``) already made it true (false): rule-engine's own order.
- Order: *before* lists, else the model, then rules, then *after* lists (when no rule acted).
  Every match is recorded, acted on or not.

Rules are evaluated over a whole batch at once: rule-engine's own ``matches`` costs ~10 µs a
rule and payment in Python (50 rules: 0.5 ms a payment, more than the rest of scoring), so each
rule's syntax tree, once rule-engine has parsed and checked it, is compiled here into numpy
operations on the batch's columns; a property test holds the two equal.

Pure Python: no Django, no I/O.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import rule_engine
from rule_engine import DataType, ast, errors

from fraud.decisions import APPROVE, DECLINE, REVIEW

ACTIONS = ("block", "review", "allow")
# The request field each list kind is matched against.
KIND_FIELDS = {
    "card": "card_id",
    "rider": "rider_id",
    "device": "device_id",
    "ip": "ip",
    "driver": "driver_id",
}
# Request fields a rule may read besides the features: numbers and words.
REQUEST_NUMBERS = ("amount_cents", "distance_km")
REQUEST_WORDS = ("pickup_zone", "card_id", "rider_id", "driver_id", "device_id", "ip")
_SEVERITY = {APPROVE: 0, REVIEW: 1, DECLINE: 2}
# Key of a column's missing rows among the columns (``columns_of``).
MISSING = "\0missing"


class RuleRefused(ValueError):
    """A rule expression that cannot be a rule; ``position`` is the 0-based character where
    the problem is (None when it is the whole expression)."""

    def __init__(self, message: str, position: int | None = None):
        super().__init__(message)
        self.message = message
        self.position = position


@dataclass(frozen=True)
class CompiledRule:
    """A checked rule: its expression, the names it reads, and its batch evaluation
    (columns by name, one array each, NaN or None for a missing value -> one bool a row)."""

    expression: str
    symbols: frozenset[str]
    evaluate: Callable[[Mapping[str, np.ndarray], int], np.ndarray]


@cache
def rule_symbols(feature_names: tuple[str, ...]) -> dict[str, Any]:
    """Return the names a rule may read, with their types: every feature (a number) and the
    request's fields."""
    types: dict[str, Any] = dict.fromkeys(feature_names, DataType.FLOAT)
    types.update(dict.fromkeys(REQUEST_NUMBERS, DataType.FLOAT))
    types.update(dict.fromkeys(REQUEST_WORDS, DataType.STRING))
    return types


def rule_compile(expression: str, symbols: Mapping[str, Any]) -> CompiledRule:
    """Return ``expression`` checked and compiled; raise ``RuleRefused`` saying what is wrong
    and where."""
    text = expression.strip()
    if not text:
        raise RuleRefused("Write an expression, e.g. card_payments_10m >= 5.", 0)
    context = rule_engine.Context(
        type_resolver=dict(symbols), resolver=rule_engine.resolve_item, default_timezone="UTC"
    )
    try:
        rule = rule_engine.Rule(text, context=context)
    except errors.RuleSyntaxError as exc:
        token = exc.token
        position = token.lexpos if token is not None else len(text)
        near = f" near {token.value!r}" if token is not None else " at the end"
        raise RuleRefused(
            f"Syntax error at character {position + 1}{near}: the expression is not complete "
            "or not well formed.",
            position,
        ) from None
    except errors.SymbolResolutionError as exc:
        name = exc.symbol_name
        found = re.search(rf"\b{re.escape(name)}\b", text)
        raise RuleRefused(
            f"Unknown name {name!r} at character {found.start() + 1 if found else 1}: a rule "
            "reads the served features and amount_cents, distance_km, pickup_zone, card_id, "
            "rider_id, driver_id, device_id, ip.",
            found.start() if found else None,
        ) from None
    except errors.EngineError as exc:
        raise RuleRefused(f"Not a valid rule: {getattr(exc, 'message', exc)}.") from None
    expression_node = rule.statement.expression
    result_type = getattr(expression_node, "result_type", DataType.UNDEFINED)
    if result_type not in (DataType.BOOLEAN, DataType.UNDEFINED):
        raise RuleRefused(
            f"A rule must be true or false; this one gives a {result_type.name.lower()}."
        )
    names: set[str] = set()
    node = _vector(expression_node, names)

    def evaluate(columns: Mapping[str, np.ndarray], rows: int) -> np.ndarray:
        with np.errstate(all="ignore"):
            values, invalid = node(columns, rows)
        result = np.asarray(values, dtype=bool)
        if result.ndim == 0:  # a rule of constants
            result = np.full(rows, bool(result))
        if isinstance(invalid, np.ndarray):
            return result & ~invalid
        return np.zeros(rows, dtype=bool) if invalid else result

    return CompiledRule(text, frozenset(names), evaluate)


def _missing(column: np.ndarray) -> np.ndarray:
    if column.dtype.kind == "f":
        return np.isnan(column)
    return np.fromiter((v is None for v in column), dtype=bool, count=len(column))


# A compiled node: (columns, rows) -> (values: array or scalar, invalid rows: bool array or False).
_Node = Callable[[Mapping[str, np.ndarray], int], tuple[Any, Any]]

_COMPARE = {
    "eq": operator.eq, "ne": operator.ne, "gt": operator.gt, "ge": operator.ge,
    "lt": operator.lt, "le": operator.le,
}  # fmt: skip
_ARITHMETIC = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "pow": np.power,
}  # fmt: skip
# rule-engine computes in Decimal, whose ``//`` and ``%`` truncate toward zero (``-7 // 2`` is
# -3, ``-7 % 2`` is -1), unlike Python's floats: the same here. They are exact on whole numbers
# in both; on a quotient they are not (``1 // (card_payments_10m / amount_cents)`` at 6 and
# 3,102 is 517 in Decimal and 516 in binary floats), so ``_whole`` refuses them there.
_DIVIDING = {
    "tdiv": np.true_divide,
    "fdiv": lambda a, b: np.trunc(np.true_divide(a, b)),
    "mod": np.fmod,
}


def _const(value: Any) -> _Node:
    return lambda columns, rows: (value, False)


def _vector(node: ast.ExpressionBase, names: set[str]) -> _Node:
    """Compile one node of rule-engine's tree into a batch operation; refuse what rules do not
    support (null, dates, functions, attribute and item lookups, bit operations)."""
    kind = type(node).__name__
    if isinstance(node, ast.SymbolExpression):
        name = node.name
        names.add(name)
        key = (MISSING, name)

        def symbol(columns, rows):
            column = columns[name]
            # ``columns_of`` computes each column's missing rows once for every rule.
            missing = columns.get(key)
            return column, _missing(column) if missing is None else missing

        return symbol
    if isinstance(node, ast.FloatExpression):
        return _const(float(node.value))
    if isinstance(node, ast.StringExpression | ast.BooleanExpression):
        return _const(node.value)
    if isinstance(node, ast.LogicExpression):
        return _logic(_vector(node.left, names), _vector(node.right, names), node.type == "and")
    if isinstance(node, ast.UnaryExpression):
        inner = _vector(node.right, names)
        if node.type == "not":
            return _unary(inner, lambda a: np.logical_not(_truth(a)))
        return _unary(inner, np.negative)
    if isinstance(node, ast.ComparisonExpression | ast.ArithmeticComparisonExpression):
        if isinstance(node.left, ast.NullExpression) or isinstance(node.right, ast.NullExpression):
            raise RuleRefused(
                "null is not part of rules: a rule never matches a payment missing a value "
                "it reads."
            )
        compare = _COMPARE[node.type]
        return _binary(
            _vector(node.left, names), _vector(node.right, names), lambda a, b: compare(a, b)
        )
    if isinstance(node, ast.AddExpression | ast.SubtractExpression | ast.ArithmeticExpression):
        left, right = _vector(node.left, names), _vector(node.right, names)
        if node.type in _ARITHMETIC:
            return _binary(left, right, _ARITHMETIC[node.type])
        if node.type in _DIVIDING:
            if node.type != "tdiv" and not (_whole(node.left) and _whole(node.right)):
                sign = "//" if node.type == "fdiv" else "%"
                raise RuleRefused(
                    f"{sign} takes whole numbers, and a side of it here is a fraction (a "
                    "division, a power or a decimal number), where rounding would decide the "
                    f"result: compare the quotient itself instead, without {sign}."
                )
            return _dividing(left, right, _DIVIDING[node.type])
    if isinstance(node, ast.ContainsExpression) and isinstance(node.container, ast.ArrayExpression):
        member = _vector(node.member, names)
        items = []
        for item in node.container.value:
            if not isinstance(item, ast.StringExpression | ast.FloatExpression):
                raise RuleRefused("A list in a rule holds only words and numbers.")
            items.append(float(item.value) if isinstance(item, ast.FloatExpression) else item.value)
        chosen = frozenset(items)
        return _unary(
            member,
            lambda a: np.fromiter((v in chosen for v in np.atleast_1d(a)), dtype=bool),
        )
    if isinstance(node, ast.TernaryExpression):
        condition = _vector(node.condition, names)
        yes, no = _vector(node.case_true, names), _vector(node.case_false, names)

        def ternary(columns, rows):
            c, ci = condition(columns, rows)
            a, ai = yes(columns, rows)
            b, bi = no(columns, rows)
            chosen = _truth(c)
            return np.where(chosen, a, b), ci | np.where(chosen, ai, bi)

        return ternary
    raise RuleRefused(f"{_plain(kind)} is not supported in rules.")


def _whole(node: ast.ExpressionBase) -> bool:
    """Whether ``node`` is a whole number whenever its features are: sums, differences,
    products, ``//`` and ``%`` of features and whole constants (a feature's value is what it is
    in either arithmetic); a division, a power or a fractional constant is not."""
    if isinstance(node, ast.SymbolExpression):
        return True
    if isinstance(node, ast.FloatExpression):
        return node.value == node.value.to_integral_value()
    if isinstance(node, ast.UnaryExpression):
        return node.type == "uminus" and _whole(node.right)
    if isinstance(node, ast.AddExpression | ast.SubtractExpression | ast.ArithmeticExpression):
        return node.type in ("add", "sub", "mul", "fdiv", "mod") and (
            _whole(node.left) and _whole(node.right)
        )
    if isinstance(node, ast.TernaryExpression):
        return _whole(node.case_true) and _whole(node.case_false)
    return False


def _plain(kind: str) -> str:
    words = re.sub(r"(?<!^)([A-Z])", r" \1", kind.removesuffix("Expression")).lower()
    return f"A {words} expression" if words else "This expression"


def _truth(values: Any) -> Any:
    return np.asarray(values, dtype=bool) if isinstance(values, np.ndarray) else bool(values)


def _logic(left: _Node, right: _Node, conjunction: bool) -> _Node:
    """``and``/``or`` as rule-engine evaluates them, left first and short-circuiting: a row whose
    left side settles it (false for ``and``, true for ``or``) does not need the right side, so
    a value the right side misses (or a division by zero there) does not spoil it."""

    def run(columns, rows):
        a, ai = left(columns, rows)
        b, bi = right(columns, rows)
        a, b = _truth(a), _truth(b)
        values = np.logical_and(a, b) if conjunction else np.logical_or(a, b)
        if bi is False or (isinstance(bi, np.ndarray | np.bool_) and not bi.any()):
            # Nothing missing on the right (the usual case): nothing to settle.
            return values, ai
        needed = a if conjunction else np.logical_not(a)
        return values, ai | (needed & bi)

    return run


def _unary(inner: _Node, apply: Callable[[Any], Any]) -> _Node:
    def run(columns, rows):
        values, invalid = inner(columns, rows)
        return apply(values), invalid

    return run


def _binary(left: _Node, right: _Node, apply: Callable[[Any, Any], Any]) -> _Node:
    def run(columns, rows):
        a, ai = left(columns, rows)
        b, bi = right(columns, rows)
        return apply(a, b), ai | bi

    return run


def _dividing(left: _Node, right: _Node, apply: Callable[[Any, Any], Any]) -> _Node:
    def run(columns, rows):
        a, ai = left(columns, rows)
        b, bi = right(columns, rows)
        zero = np.asarray(b) == 0
        return apply(a, np.where(zero, 1.0, b)), ai | bi | zero

    return run


# Applying lists and rules to a batch.


@dataclass(frozen=True)
class Entry:
    """A list entry as the scorer holds it; ``expires_us`` µs since the epoch (None: never)."""

    id: int
    kind: str
    value: str
    action: str
    stage: str
    expires_us: int | None = None


@dataclass(frozen=True)
class PolicyRule:
    id: int
    name: str
    action: str
    priority: int
    shadow: bool
    compiled: CompiledRule


@dataclass(frozen=True)
class Policy:
    """The lists and rules in force: entries by (kind, value), rules by priority."""

    entries: Mapping[tuple[str, str], tuple[Entry, ...]] = field(default_factory=dict)
    rules: tuple[PolicyRule, ...] = ()

    @classmethod
    def build(cls, entries: Sequence[Entry], rules: Sequence[PolicyRule]) -> Policy:
        by_key: dict[tuple[str, str], list[Entry]] = {}
        for entry in entries:
            by_key.setdefault((entry.kind, entry.value), []).append(entry)
        return cls(
            {key: tuple(found) for key, found in by_key.items()},
            tuple(sorted(rules, key=lambda r: (r.priority, r.id))),
        )

    def __bool__(self) -> bool:
        return bool(self.entries or self.rules)


@dataclass(frozen=True)
class Applied:
    """One payment's decision after the policy and every match (acted on or not)."""

    decision: str
    matched: list[dict[str, Any]]


def _after(decision: str, action: str) -> str:
    if action == "block":
        return DECLINE
    if action == "review":
        return max(decision, REVIEW, key=_SEVERITY.__getitem__)
    return APPROVE if decision == REVIEW else decision


def columns_of(
    requests: Sequence[Mapping[str, Any]],
    features: Sequence[Mapping[str, Any]],
    symbols: frozenset[str],
    words: frozenset[str],
) -> dict[str, np.ndarray]:
    """Return one column per name of ``symbols`` over the batch: numbers as floats (NaN:
    missing), words (``words``) as objects (None: missing)."""
    columns: dict[str, np.ndarray] = {}
    for name in symbols:
        raw = [features[i].get(name, request.get(name)) for i, request in enumerate(requests)]
        if name in words:
            columns[name] = np.array([None if v in (None, "") else str(v) for v in raw], object)
        else:
            columns[name] = np.array(
                [np.nan if v is None else float(v) for v in raw], dtype=np.float64
            )
        columns[(MISSING, name)] = _missing(columns[name])
    return columns


def policy_apply(
    policy: Policy,
    *,
    requests: Sequence[Mapping[str, Any]],
    features: Sequence[Mapping[str, Any]],
    decisions: Sequence[str],
    now_us: int,
) -> list[Applied]:
    """Return each payment's decision under ``policy``, given the model's ``decisions``, with
    what matched (the module says how)."""
    rows = len(requests)
    matched: list[list[dict[str, Any]]] = [[] for _ in range(rows)]
    out = list(decisions)
    decided_before = [False] * rows
    after_entries: list[list[Entry]] = [[] for _ in range(rows)]
    if policy.entries:
        for i, request in enumerate(requests):
            hits = []
            for kind, name in KIND_FIELDS.items():
                value = request.get(name)
                if value:
                    for entry in policy.entries.get((kind, str(value)), ()):
                        if entry.expires_us is None or entry.expires_us > now_us:
                            hits.append(entry)
            before = [e for e in hits if e.stage == "before"]
            if before:
                acting = min(before, key=lambda e: ACTIONS.index(e.action))
                out[i] = {"block": DECLINE, "review": REVIEW, "allow": APPROVE}[acting.action]
                decided_before[i] = True
                for e in before:
                    matched[i].append(_entry_match(e, acted=e is acting))
            after_entries[i] = [e for e in hits if e.stage == "after"]
            if decided_before[i]:
                matched[i] += [_entry_match(e, acted=False) for e in after_entries[i]]
    rule_acted = [False] * rows
    if policy.rules:
        symbols = frozenset().union(*(r.compiled.symbols for r in policy.rules))
        columns = columns_of(requests, features, symbols, frozenset(REQUEST_WORDS))
        for rule in policy.rules:
            hits = rule.compiled.evaluate(columns, rows)
            for i in hits.nonzero()[0]:
                acts = not rule.shadow and not decided_before[i] and not rule_acted[i]
                if acts:
                    out[i] = _after(out[i], rule.action)
                    rule_acted[i] = True
                matched[i].append(
                    {"type": "rule", "id": rule.id, "name": rule.name, "action": rule.action,
                     "acted": acts, "shadow": rule.shadow}
                )  # fmt: skip
    for i in range(rows):
        if decided_before[i]:
            continue
        for entry in sorted(after_entries[i], key=lambda e: ACTIONS.index(e.action)):
            acts = not rule_acted[i]
            if acts:
                out[i] = _after(out[i], entry.action)
                rule_acted[i] = True
            matched[i].append(_entry_match(entry, acted=acts))
    return [Applied(out[i], matched[i]) for i in range(rows)]


def _entry_match(entry: Entry, *, acted: bool) -> dict[str, Any]:
    return {
        "type": "list",
        "id": entry.id,
        "name": f"{entry.kind} {entry.action} list",
        "action": entry.action,
        "acted": acted,
        "shadow": False,
    }
