"""Delayed labels follow their distribution; drifts change the world at their time."""

import math
import random
import statistics
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from simulator.config import LabelConfig, parse_drift, parse_scenario_rate
from simulator.labels import chargeback_delay
from tests.simulator.conftest import only, simulate


def test_chargeback_delays_are_lognormal_with_the_configured_median():
    labels = LabelConfig(fraction=0.7, delay_median_days=12.0, delay_sigma=0.5)
    rng = random.Random(1)
    draws = [chargeback_delay(rng, labels, is_fraud=True) for _ in range(20_000)]
    delays = [d.total_seconds() / 86400 for d in draws if d is not None]

    assert abs(len(delays) / len(draws) - 0.7) < 0.01
    assert abs(statistics.median(delays) - 12.0) < 0.3
    logs = [math.log(d) for d in delays]
    assert abs(statistics.stdev(logs) - 0.5) < 0.02


def test_false_chargebacks_come_at_their_small_rate():
    labels = LabelConfig(false_rate=0.01)
    rng = random.Random(2)
    draws = [chargeback_delay(rng, labels, is_fraud=False) for _ in range(50_000)]

    assert abs(sum(d is not None for d in draws) / len(draws) - 0.01) < 0.002


def test_fraudulent_captures_are_charged_back_after_the_delay_with_truth_beside(city):
    labels = LabelConfig(fraction=0.5, delay_median_days=1.0, delay_sigma=0.3, false_rate=0.0)
    emitted = simulate(
        city, hours=24 * 6, seed=21, labels=labels, scenarios=only("stolen_card_burst", 4)
    )
    captured = {
        e.event.payment_id: e.event
        for e in emitted
        if e.event.topic == "payments.captured.v1" and e.truth
    }
    authorized = {
        e.event.payment_id: e.event for e in emitted if e.event.topic == "payments.authorized.v1"
    }
    chargebacks = [e for e in emitted if e.event.topic == "labels.chargeback_filed.v1"]
    early = [
        p
        for p in captured.values()
        if p.occurred_at < emitted[-1].event.occurred_at - timedelta(days=3)
    ]

    assert chargebacks
    assert all(c.truth.is_fraud and c.truth.scenario == "stolen_card_burst" for c in chargebacks)
    labelled = {c.event.payment_id for c in chargebacks}
    assert labelled <= set(captured)
    assert 0.35 < len(labelled & {p.payment_id for p in early}) / len(early) < 0.65
    delays = [
        (c.event.occurred_at - authorized[c.event.payment_id].occurred_at).total_seconds() / 86400
        for c in chargebacks
    ]
    assert 0.7 < statistics.median(delays) < 1.3
    for c in chargebacks:
        assert c.event.card_id == authorized[c.event.payment_id].card_id
        assert c.event.amount_cents == authorized[c.event.payment_id].amount_cents


def test_black_friday_surges_demand_for_its_day_only(city):
    day = datetime(2026, 1, 6, tzinfo=UTC)
    plain = simulate(city, hours=72, seed=22, scenarios=only(None))
    surge = simulate(
        city,
        hours=72,
        seed=22,
        scenarios=only(None),
        drifts=(parse_drift(f"black_friday@{day.isoformat()}"),),
    )

    def per_day(emitted) -> Counter:
        return Counter(
            e.event.occurred_at.date() for e in emitted if e.event.topic == "trips.requested.v1"
        )

    before, after = per_day(plain), per_day(surge)
    assert after[day.date()] > 2 * before[day.date()]
    assert (
        abs(after[(day - timedelta(days=1)).date()] - before[(day - timedelta(days=1)).date()])
        < 0.15 * before[(day - timedelta(days=1)).date()]
    )
    fares = [
        e.event.amount_cents
        for e in surge
        if e.event.topic == "payments.authorized.v1" and e.event.occurred_at.date() == day.date()
    ]
    assert min(fares) >= 840  # the minimum fare, x1.2


def test_a_scenario_drift_switches_the_scenario_on_at_its_time(city):
    at = datetime(2026, 1, 6, 12, tzinfo=UTC)
    emitted = simulate(
        city,
        hours=72,
        seed=23,
        scenarios=only("card_testing", 6),
        drifts=(parse_drift(f"card_testing@{at.isoformat()}"),),
    )
    fraud = [e for e in emitted if e.truth and e.truth.is_fraud]

    assert fraud
    assert min(e.event.occurred_at for e in fraud) >= at
    assert {e.truth.scenario for e in fraud} == {"card_testing"}


def test_a_fraud_ring_multiplies_bursts_from_new_addresses(city):
    at = datetime(2026, 1, 6, tzinfo=UTC)
    emitted = simulate(
        city,
        hours=96,
        seed=24,
        scenarios=only("stolen_card_burst", 2),
        drifts=(parse_drift(f"fraud_ring@{at.isoformat()}"),),
    )
    starts = Counter(
        (e.truth.incident_id, e.event.occurred_at >= at)
        for e in emitted
        if e.truth and e.truth.is_fraud
    )
    before = len({i for i, late in starts if not late})
    after = len({i for i, late in starts if late})
    ring_ips = {
        e.event.context.ip
        for e in emitted
        if e.truth
        and e.truth.is_fraud
        and e.event.topic == "payments.authorized.v1"
        and e.event.occurred_at >= at
    }
    assert after > 3 * before
    assert all(ip.startswith("192.0.2.") for ip in ring_ips)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("black_friday", "expected NAME@TIME"),
        ("cyber_monday@2026-11-30", "unknown name 'cyber_monday'"),
        ("black_friday@next week", "Invalid isoformat"),
    ],
)
def test_bad_drifts_are_refused_saying_why(text, message):
    with pytest.raises(ValueError, match=message):
        parse_drift(text)


def test_scenario_rates_parse_and_refuse_nonsense():
    assert parse_scenario_rate("collusion=0.5") == ("collusion", 0.5)
    with pytest.raises(ValueError, match="expected NAME=RATE"):
        parse_scenario_rate("laundering=1")
    with pytest.raises(ValueError, match="rate must be a number >= 0"):
        parse_scenario_rate("collusion=-1")
