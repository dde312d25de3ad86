"""Rules and lists, pure (``fraud.policy``): the batch evaluation equals rule-engine's own on
random rules and rows; refusals say what and where; the order of lists, model and rules."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
import rule_engine
from hypothesis import given, reject, settings
from hypothesis import strategies as st

from fraud.policy import (
    Entry,
    Policy,
    PolicyRule,
    RuleRefused,
    policy_apply,
    rule_compile,
    rule_symbols,
)

SYMBOLS = rule_symbols(("card_payments_10m", "card_amount_cents_1h"))
NUMBERS = ("card_payments_10m", "card_amount_cents_1h", "amount_cents")


def _numbers():
    leaf = st.one_of(
        st.sampled_from(NUMBERS),
        st.integers(min_value=-50, max_value=5000).map(str),
    )
    return st.recursive(
        leaf,
        lambda inner: st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "//", "%"]), inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        max_leaves=4,
    )


def _conditions():
    comparison = st.tuples(
        _numbers(), st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), _numbers()
    ).map(" ".join)
    zone = st.tuples(st.sampled_from(["==", "!="]), st.sampled_from(["Z-1-1", "Z-2-3"])).map(
        lambda t: f"pickup_zone {t[0]} '{t[1]}'"
    )
    member = st.just("pickup_zone in ['Z-1-1', 'Z-4-4']")
    leaf = st.one_of(comparison, zone, member)
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(
                lambda t: f"({t[0]} {t[1]} {t[2]})"
            ),
            inner.map(lambda c: f"not ({c})"),
        ),
        max_leaves=4,
    )


ROW = st.fixed_dictionaries(
    {
        "card_payments_10m": st.integers(0, 12),
        "card_amount_cents_1h": st.integers(-100, 20000),
        "amount_cents": st.integers(0, 9000),
        "pickup_zone": st.sampled_from(["Z-1-1", "Z-2-3", "Z-4-4"]),
    }
)


def _engine_matches(expression: str, row: dict) -> bool:
    context = rule_engine.Context(type_resolver=SYMBOLS, resolver=rule_engine.resolve_item)
    rule = rule_engine.Rule(expression, context=context)
    try:
        return rule.matches({k: Decimal(v) if isinstance(v, int) else v for k, v in row.items()})
    except (ZeroDivisionError, rule_engine.errors.EvaluationError, ArithmeticError):
        # Division by zero: the batch evaluation does not match such a row either.
        return False


@settings(max_examples=300, deadline=None)
@given(expression=_conditions(), rows=st.lists(ROW, min_size=1, max_size=8))
def test_the_batch_evaluation_equals_rule_engines_own(expression, rows):
    try:
        compiled = rule_compile(expression, SYMBOLS)
    except RuleRefused as refused:
        # rule-engine folds constants as it parses: ``(0 / 0)`` is refused, rightly.
        message = refused.message
        compiled = None
    if compiled is None:
        # ``//`` and ``%`` of a quotient are refused: binary floats and Decimal round it apart.
        assert "arithmetic error" in message or (
            "takes whole numbers" in message and " / " in expression
        )
        reject()
    columns = {
        name: np.array([r[name] for r in rows], dtype=object if name == "pickup_zone" else float)
        for name in compiled.symbols
    }
    got = compiled.evaluate(columns, len(rows)).tolist()
    assert got == [_engine_matches(expression, r) for r in rows]


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=40))
def test_any_text_is_a_rule_or_a_clean_refusal(text):
    try:
        compiled = rule_compile(text, SYMBOLS)
    except RuleRefused as exc:
        refused = exc
    else:
        refused = None
        assert compiled.symbols <= set(SYMBOLS)
    if refused is not None:
        assert refused.message
        assert refused.position is None or 0 <= refused.position <= len(text)


@pytest.mark.parametrize(
    ("expression", "message", "position"),
    [
        ("card_payments_10m >= and 5", "Syntax error at character 22 near 'and'", 21),
        ("card_payments_10m >= 5 and (", "Syntax error at character 29", 28),
        ("amount_cents > 1 and velocity > 3", "Unknown name 'velocity' at character 22", 21),
        ("amount_cents + 1", "A rule must be true or false", None),
        ("card_payments_10m == null", "null is not part of rules", None),
        ("", "Write an expression", 0),
        ("1 // (card_payments_10m / amount_cents) < 5", "// takes whole numbers", None),
        ("amount_cents % 2.5 == 1", "% takes whole numbers", None),
    ],
)
def test_refusals_say_what_and_where(expression, message, position):
    with pytest.raises(RuleRefused) as refused:
        rule_compile(expression, SYMBOLS)
    assert refused.value.message.startswith(message)
    assert refused.value.position == position


def test_floor_division_and_remainder_of_whole_numbers_stay_allowed():
    compiled = rule_compile("(amount_cents // 100) % 7 == -card_payments_10m + 6", SYMBOLS)
    columns = {
        "amount_cents": np.array([1000.0, 1250.0, 0.0]),
        "card_payments_10m": np.array([3.0, 2.0, 6.0]),
    }
    assert compiled.evaluate(columns, 3).tolist() == [True, False, True]


def test_a_missing_value_never_matches_even_under_not():
    compiled = rule_compile("not (card_payments_10m > 3)", SYMBOLS)
    columns = {"card_payments_10m": np.array([1.0, np.nan, 5.0])}
    assert compiled.evaluate(columns, 3).tolist() == [True, False, False]


def _rule(id: int, expression: str, action: str, *, priority: int = 10, shadow=False):
    return PolicyRule(id, f"rule {id}", action, priority, shadow, rule_compile(expression, SYMBOLS))


def _apply(policy, decisions, requests=None, features=None):
    requests = requests or [
        {"card_id": f"card-{i}", "rider_id": "rider-1", "amount_cents": 4000, "ip": "10.0.0.1"}
        for i in range(len(decisions))
    ]
    features = features or [{"card_payments_10m": 6} for _ in decisions]
    return policy_apply(
        policy, requests=requests, features=features, decisions=decisions, now_us=1_000
    )


def test_a_list_before_the_model_decides_whatever_the_model_said():
    policy = Policy.build(
        [
            Entry(1, "card", "card-0", "block", "before"),
            Entry(2, "card", "card-1", "allow", "before"),
            Entry(3, "ip", "10.0.0.1", "review", "after"),
        ],
        [],
    )
    applied = _apply(policy, ["approve", "decline", "approve"])
    assert [a.decision for a in applied] == ["decline", "approve", "review"]
    assert [(m["name"], m["acted"]) for m in applied[0].matched] == [
        ("card block list", True),
        ("ip review list", False),
    ]


def test_after_the_model_a_list_moves_the_decision_one_way_only():
    policy = Policy.build([Entry(1, "rider", "rider-1", "allow", "after")], [])
    assert [a.decision for a in _apply(policy, ["review", "decline", "approve"])] == [
        "approve", "decline", "approve",
    ]  # fmt: skip


def test_an_expired_entry_is_ignored():
    policy = Policy.build([Entry(1, "card", "card-0", "block", "before", expires_us=1_000)], [])
    assert _apply(policy, ["approve"])[0].decision == "approve"


def test_the_first_active_rule_by_priority_acts_and_shadows_are_only_recorded():
    policy = Policy.build(
        [],
        [
            _rule(1, "card_payments_10m >= 5", "block", priority=20),
            _rule(2, "amount_cents > 3000", "review", priority=10),
            _rule(3, "card_payments_10m > 0", "block", priority=1, shadow=True),
        ],
    )
    [applied] = _apply(policy, ["approve"])
    assert applied.decision == "review"
    assert [(m["id"], m["acted"], m["shadow"]) for m in applied.matched] == [
        (3, False, True),
        (2, True, False),
        (1, False, False),
    ]
    # A review rule never lowers a decline.
    assert _apply(policy, ["decline"])[0].decision == "decline"


def test_no_policy_changes_nothing():
    assert [a.decision for a in _apply(Policy(), ["approve", "review"])] == ["approve", "review"]
