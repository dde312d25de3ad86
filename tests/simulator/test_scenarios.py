"""Each fraud scenario leaves its signature in the events (and only fraud is labelled fraud)."""

import statistics
from collections import defaultdict
from datetime import timedelta

from simulator.city import distance_km
from tests.simulator.conftest import only, simulate

PAYMENTS = ("payments.authorized.v1", "payments.declined.v1")


def incidents(emitted, scenario: str) -> dict[str, list]:
    """Return the events of each incident of ``scenario`` that had 12 simulated hours to play
    out before the end of the run, in order."""
    out = defaultdict(list)
    for item in emitted:
        if item.truth and item.truth.is_fraud:
            assert item.truth.scenario == scenario
            out[item.truth.incident_id].append(item.event)
    end = emitted[-1].event.occurred_at
    return {k: v for k, v in out.items() if v[0].occurred_at < end - timedelta(hours=12)}


def test_a_stolen_card_burst_puts_many_payments_on_one_card_within_minutes(city):
    emitted = simulate(city, hours=48, seed=11, scenarios=only("stolen_card_burst", 6))
    legit_fingerprints = {
        e.event.card_fingerprint
        for e in emitted
        if e.event.topic in PAYMENTS and not e.truth.is_fraud
    }
    found = incidents(emitted, "stolen_card_burst")

    assert len(found) >= 3
    for events in found.values():
        payments = [e for e in events if e.topic in PAYMENTS]
        assert len({p.card_fingerprint for p in payments}) == 1
        assert len(payments) >= 8
        assert payments[-1].occurred_at - payments[0].occurred_at <= timedelta(minutes=20)
        assert len({p.rider_id for p in payments}) >= 2
        assert len({p.context.device_id for p in payments}) >= 2
        assert len({p.card_id for p in payments}) == len({p.rider_id for p in payments})
    # The stolen numbers belong to real riders, who go on paying with them.
    stolen = {next(e for e in ev if e.topic in PAYMENTS).card_fingerprint for ev in found.values()}
    assert stolen & legit_fingerprints


def test_card_testing_is_many_small_mostly_declined_holds_on_fresh_cards(city):
    emitted = simulate(city, hours=48, seed=12, scenarios=only("card_testing", 3))
    found = incidents(emitted, "card_testing")

    assert len(found) >= 3
    for events in found.values():
        payments = [e for e in events if e.topic in PAYMENTS]
        declined = [p for p in payments if p.topic == "payments.declined.v1"]
        assert len(payments) >= 10
        assert len(declined) / len(payments) >= 0.6
        assert max(p.amount_cents for p in payments) <= 1000
        assert len({p.card_id for p in payments}) == len(payments)
        assert len({p.rider_id for p in payments}) == 1
        added = [e.card_id for e in events if e.topic == "cards.added.v1"]
        assert {p.card_id for p in payments} <= set(added)
        # Approved tests are cancelled before any driver moves: nothing is captured.
        assert not [e for e in events if e.topic == "payments.captured.v1"]


def test_account_takeover_changes_device_and_place_before_costly_trips(city):
    emitted = simulate(city, hours=72, seed=13, scenarios=only("account_takeover", 6))
    legit_amounts = []
    legit_devices = defaultdict(set)
    legit_pickups = defaultdict(list)
    for item in emitted:
        event = item.event
        if event.topic == "payments.authorized.v1" and not item.truth.is_fraud:
            legit_amounts.append(event.amount_cents)
            legit_devices[event.rider_id].add(event.context.device_id)
        if event.topic == "trips.requested.v1" and item.truth is None:
            legit_pickups[event.rider_id].append(event.pickup.zone)
    p90 = statistics.quantiles(legit_amounts, n=10)[-1]
    found = incidents(emitted, "account_takeover")

    assert len(found) >= 5
    for events in found.values():
        changed, login = events[0], events[1]
        assert changed.topic == "riders.device_changed.v1"
        assert login.topic == "riders.logged_in.v1"
        assert changed.previous_device_id is not None
        assert changed.context.device_id == login.context.device_id
        assert changed.context.device_id not in legit_devices[changed.rider_id]
        payments = [e for e in events if e.topic == "payments.authorized.v1"]
        assert len(payments) >= 2
        assert all(p.rider_id == changed.rider_id for p in payments)
        assert all(p.context.device_id == login.context.device_id for p in payments)
        trips = [e for e in events if e.topic == "trips.requested.v1"]
        assert min(t.distance_km for t in trips) >= 12.0
        assert min(p.amount_cents for p in payments) > p90
        usual = legit_pickups[changed.rider_id]
        if len(usual) >= 3:
            usual_zone = city.by_id[statistics.mode(usual)].centre
            where = (login.context.lat, login.context.lng)
            assert distance_km(usual_zone, where) >= 5.0


def test_collusion_repeats_short_trips_between_one_driver_and_one_rider(city):
    emitted = simulate(city, hours=72, seed=14, scenarios=only("collusion", 2))
    found = incidents(emitted, "collusion")

    assert len(found) >= 3
    for events in found.values():
        pairs = {(e.rider_id, e.driver_id) for e in events if e.topic == "trips.assigned.v1"}
        trips = [e for e in events if e.topic == "trips.requested.v1"]
        assert len(pairs) == 1
        assert len(trips) >= 5
        assert max(t.distance_km for t in trips) < 1.0
        assert all(t.pickup.zone == t.dropoff.zone for t in trips)
        completed = [e for e in events if e.topic == "trips.completed.v1"]
        assert len(completed) == len(trips)


def test_promo_abuse_farms_accounts_on_one_device_and_cancels_most_trips(city):
    emitted = simulate(city, hours=48, seed=15, scenarios=only("promo_abuse", 3))
    found = incidents(emitted, "promo_abuse")

    assert len(found) >= 3
    cancelled_share = []
    for events in found.values():
        sign_ups = [
            e
            for e in events
            if e.topic == "riders.device_changed.v1" and e.previous_device_id is None
        ]
        assert len(sign_ups) >= 3
        assert len({e.context.device_id for e in sign_ups}) == 1
        assert len({e.rider_id for e in sign_ups}) == len(sign_ups)
        requested = [e for e in events if e.topic == "trips.requested.v1"]
        cancelled = [e for e in events if e.topic == "trips.cancelled.v1"]
        cancelled_share.append(len(cancelled) / len(requested))
    assert statistics.mean(cancelled_share) >= 0.6


def test_with_every_scenario_off_nothing_is_fraud(city):
    emitted = simulate(city, hours=48, seed=16, scenarios=only(None))

    assert not [e for e in emitted if e.truth and e.truth.is_fraud]
    assert not [
        e for e in emitted if e.event.topic == "labels.chargeback_filed.v1" and e.truth.is_fraud
    ]


def test_scenario_trips_stay_in_the_city(city):
    emitted = simulate(city, hours=24, seed=17, scenarios=only("account_takeover", 6))
    for item in emitted:
        if item.event.topic == "trips.requested.v1":
            trip = item.event
            assert city.zone_for(trip.pickup.lat, trip.pickup.lng) == trip.pickup.zone
            assert city.zone_for(trip.dropoff.lat, trip.dropoff.lng) == trip.dropoff.zone
            here = (trip.pickup.lat, trip.pickup.lng)
            assert (
                round(distance_km(here, (trip.dropoff.lat, trip.dropoff.lng)), 3)
                == trip.distance_km
            )
