"""The engine: deterministic, valid events, consistent ids, ground truth kept out of events."""

import json
from collections import defaultdict
from datetime import timedelta

from events.contracts import decode
from simulator.config import SCENARIOS, LabelConfig, SimConfig
from simulator.engine import Simulation
from simulator.world import MAX_ACCOUNT_AGE
from tests.simulator.conftest import only, simulate


def encoded(emitted) -> list[bytes]:
    return [e.event.encode() for e in emitted]


def test_the_same_seed_gives_byte_identical_events(city):
    first = simulate(city, hours=12, seed=7)
    second = simulate(city, hours=12, seed=7)

    assert len(first) > 400
    assert any(e.event.topic == "riders.signed_up.v1" for e in first)
    assert encoded(first) == encoded(second)
    assert [e.truth for e in first] == [e.truth for e in second]


def test_another_seed_gives_other_events(city):
    one = encoded(simulate(city, hours=6, seed=7))
    other = encoded(simulate(city, hours=6, seed=8))

    assert one != other
    assert not set(one) & set(other)


def test_every_event_is_valid_for_its_topic_and_in_time_order(city):
    emitted = simulate(city, hours=12, seed=3)

    for item in emitted:
        assert decode(item.event.topic, item.event.encode()) == item.event
    times = [e.event.occurred_at for e in emitted]
    assert times == sorted(times)
    assert len({e.event.event_id for e in emitted}) == len(emitted)


def test_trip_steps_follow_their_request_and_name_the_same_rider_and_card(city):
    emitted = simulate(city, hours=12, seed=3)
    requested, paid = {}, {}
    for item in emitted:
        event = item.event
        if event.topic == "payments.authorized.v1":
            paid[event.payment_id] = event
        elif event.topic == "trips.requested.v1":
            requested[event.trip_id] = event
        elif event.topic.startswith("trips."):
            assert requested[event.trip_id].rider_id == event.rider_id
        elif event.topic == "payments.captured.v1":
            authorized = paid[event.payment_id]
            assert (authorized.trip_id, authorized.card_id) == (event.trip_id, event.card_id)
            assert requested[event.trip_id].card_id == event.card_id
    assert len(requested) == len(paid)


def test_ground_truth_never_appears_in_an_event(city):
    emitted = simulate(city, hours=24, seed=5, scenarios=dict.fromkeys(SCENARIOS, 12.0))
    incidents = {e.truth.incident_id for e in emitted if e.truth and e.truth.is_fraud}
    assert len(incidents) > 20

    forbidden_keys = {"is_fraud", "fraud", "scenario", "incident", "incident_id", "label"}
    for item in emitted:
        raw = item.event.encode()
        keys = set()
        stack = [json.loads(raw)]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                keys |= set(node)
                stack.extend(node.values())
        assert not keys & forbidden_keys
        assert not any(name.encode() in raw for name in SCENARIOS)
        assert b"incident" not in raw


def test_truth_is_recorded_for_every_payment_and_fraud_event(city):
    emitted = simulate(city, hours=24, seed=5)
    payments = [
        e for e in emitted if e.event.topic.startswith(("payments.authorized", "payments.declined"))
    ]

    assert all(e.truth is not None for e in payments)
    fraud = [e for e in emitted if e.truth and e.truth.is_fraud]
    assert {e.truth.scenario for e in fraud} <= set(SCENARIOS)
    assert all(e.truth.incident_id.startswith(e.truth.scenario + "-") for e in fraud)


def test_new_riders_sign_up_then_add_a_card_before_booking(city):
    emitted = simulate(city, hours=24, seed=2, new_riders_per_day=200.0, scenarios=only(None))
    newcomers: set[str] = set()
    history = defaultdict(list)
    for item in emitted:
        event = item.event
        if event.topic == "riders.signed_up.v1":
            newcomers.add(event.rider_id)
        if getattr(event, "rider_id", None) in newcomers:
            history[event.rider_id].append(event.topic)

    booked = [topics for topics in history.values() if "payments.authorized.v1" in topics]
    assert len(newcomers) > 150
    assert len(booked) > 50
    for topics in history.values():
        assert topics[:3] == [
            "riders.signed_up.v1",
            "riders.device_changed.v1",
            "riders.logged_in.v1",
        ]
    for topics in booked:
        assert topics.index("cards.added.v1") < topics.index("payments.authorized.v1")


def test_only_riders_created_during_the_run_sign_up_before_any_other_event_of_theirs(city):
    config = SimConfig(seed=6, riders=200, drivers=40, scenarios=dict.fromkeys(SCENARIOS, 6.0))
    sim = Simulation(config, city)
    population = {r.rider_id: r.signed_up_at for r in sim.world.riders}
    emitted = list(sim.events(until=config.start + timedelta(hours=24)))

    assert all(
        config.start - MAX_ACCOUNT_AGE <= at <= config.start - timedelta(days=1)
        for at in population.values()
    )
    first: dict[str, object] = {}
    sign_ups = defaultdict(list)
    for item in emitted:
        rider_id = getattr(item.event, "rider_id", None)
        if rider_id is not None:
            first.setdefault(rider_id, item)
        if item.event.topic == "riders.signed_up.v1":
            sign_ups[rider_id].append(item)
    newcomers = set(first) - set(population)

    assert set(sign_ups) == newcomers
    assert all(len(items) == 1 for items in sign_ups.values())
    assert all(first[r].event.topic == "riders.signed_up.v1" for r in newcomers)
    fraud = {r for r in newcomers if sign_ups[r][0].truth is not None}
    legit = newcomers - fraud
    assert len(fraud) > 20
    assert len(legit) > 5
    assert {sign_ups[r][0].truth.scenario for r in fraud} == {
        "stolen_card_burst",
        "card_testing",
        "collusion",
        "promo_abuse",
    }
    joined = {r.rider_id: r.signed_up_at for r in sim.world.riders if r.rider_id in newcomers}
    assert set(joined) == legit
    assert all(sign_ups[r][0].event.occurred_at == at for r, at in joined.items())


def test_chargebacks_name_the_trip_driver_and_pickup_zone_of_the_payment(city):
    labels = LabelConfig(fraction=1.0, delay_median_days=0.2, delay_sigma=0.3, false_rate=0.05)
    emitted = simulate(city, hours=48, seed=9, labels=labels)
    authorized, requested, assigned = {}, {}, {}
    chargebacks = []
    for item in emitted:
        event = item.event
        if event.topic == "payments.authorized.v1":
            authorized[event.payment_id] = event
        elif event.topic == "trips.requested.v1":
            requested[event.trip_id] = event
        elif event.topic == "trips.assigned.v1":
            assigned[event.trip_id] = event
        elif event.topic == "labels.chargeback_filed.v1":
            chargebacks.append(item)

    assert {c.truth.is_fraud for c in chargebacks} == {True, False}
    for item in chargebacks:
        chargeback = item.event
        paid = authorized[chargeback.payment_id]
        assert chargeback.trip_id == paid.trip_id
        assert chargeback.pickup_zone == paid.pickup_zone
        assert chargeback.pickup_zone == requested[paid.trip_id].pickup.zone
        assert chargeback.driver_id == assigned[paid.trip_id].driver_id
        assert chargeback.driver_id is not None


def test_an_authorised_payment_carries_its_trip_planned_distance(city):
    emitted = simulate(city, hours=12, seed=3)
    distances = {
        e.event.trip_id: e.event.distance_km
        for e in emitted
        if e.event.topic == "trips.requested.v1"
    }
    authorized = [e.event for e in emitted if e.event.topic == "payments.authorized.v1"]

    assert len(authorized) > 50
    assert all(p.distance_km == distances[p.trip_id] for p in authorized)
