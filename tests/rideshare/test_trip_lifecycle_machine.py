"""The trip lifecycle as a hypothesis state machine: riders request trips (some cards declined),
drivers accept, pick up, complete and cancel, riders cancel (confirming the fee or not), the
scorer's verdicts and the analysts' outcomes arrive at any moment, staff refund. Every step
either does what it says or is refused with a domain error, and after each one:

- a trip only ever moves along the lifecycle (never back, never from an end state);
- money is conserved: what was captured never exceeds what was authorised, what was refunded
  never exceeds what was captured, and a payment's status says the same as its amounts;
- a driver is on a trip exactly when one of the trips is assigned to or picked up by them.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule

from rideshare import services
from rideshare.city import LatLng
from rideshare.errors import CancellationFeeUnconfirmed, DomainError
from rideshare.models import Driver, Payment, Trip
from rideshare.services.payments import REFUSED
from rideshare.services.verdicts import payment_review_settle, payment_verdict_apply

from .factories import VISA_DECLINED, VISA_OK, card_make, context, driver_make, rider_make

pytestmark = pytest.mark.django_db

S = Trip.Status
# Where a trip may go from each status (its own status again: a refused step).
NEXT = {
    S.REQUESTED: {S.REQUESTED, S.DRIVER_ASSIGNED, S.CANCELLED},
    S.DRIVER_ASSIGNED: {S.DRIVER_ASSIGNED, S.PICKED_UP, S.CANCELLED},
    S.PICKED_UP: {S.PICKED_UP, S.COMPLETED},
    S.COMPLETED: {S.COMPLETED},
    S.CANCELLED: {S.CANCELLED},
    S.PAYMENT_DECLINED: {S.PAYMENT_DECLINED},
}


def _reachable(status: str) -> set[str]:
    """Every status a trip at ``status`` may be at after any number of steps (a rule may take
    several: ``ride``)."""
    found, todo = set(), [status]
    while todo:
        for after in NEXT[todo.pop()]:
            if after not in found:
                found.add(after)
                todo.append(after)
    return found


REACHABLE = {status: _reachable(status) for status in NEXT}


class TripLifecycle(RuleBasedStateMachine):
    trips = Bundle("trips")

    @initialize()
    def people(self):
        self.clock = timezone.now()
        self.riders = [rider_make() for _ in range(2)]
        self.cards = {
            rider.pk: [card_make(rider, VISA_OK), card_make(rider, VISA_DECLINED)]
            for rider in self.riders
        }
        self.drivers = [driver_make() for _ in range(2)]
        self.staff = services.staff_user_ensure(username="refunds", password="a-long-pass-1")
        self.seen: dict[int, str] = {}

    def _now(self, minutes: int = 1):
        self.clock += timedelta(minutes=minutes)
        return self.clock

    def _try(self, step) -> None:
        # Refused with a domain error: the invariants say nothing changed that should not have.
        with contextlib.suppress(DomainError):
            step()

    @rule(target=trips, rider=st.integers(0, 1), declined=st.booleans())
    def request(self, rider, declined):
        owner = self.riders[rider]
        card = self.cards[owner.pk][1 if declined else 0]
        trip = None

        def step():
            nonlocal trip
            trip = services.trip_request(
                rider=owner, card=card, context=context(owner.last_device_id or "device-a"),
                pickup=LatLng(52.33, 4.845), dropoff=LatLng(52.39, 4.935),
                now=self._now(),
            )  # fmt: skip

        self._try(step)
        if trip is None:
            trip = Trip.objects.filter(rider=owner).order_by("-pk").first()
        return trip.pk

    @rule(trip=trips, driver=st.integers(0, 1))
    def assign(self, trip, driver):
        self._try(
            lambda: services.trip_assign(
                trip=Trip.objects.get(pk=trip), driver=self.drivers[driver], now=self._now()
            )
        )

    @rule(trip=trips)
    def pick_up(self, trip):
        found = Trip.objects.get(pk=trip)
        if found.driver is not None:
            self._try(
                lambda: services.trip_pick_up(trip=found, driver=found.driver, now=self._now())
            )

    @rule(trip=trips, minutes=st.integers(1, 60))
    def complete(self, trip, minutes):
        found = Trip.objects.get(pk=trip)
        if found.driver is not None:
            self._try(
                lambda: services.trip_complete(
                    trip=found, driver=found.driver, now=self._now(minutes)
                )
            )

    @rule(trip=trips, driver=st.integers(0, 1))
    def ride(self, trip, driver):
        # The whole ride at once, so that completed (captured, refundable) trips are common.
        self.assign(trip, driver)
        self.pick_up(trip)
        self.complete(trip, 20)

    @rule(trip=trips, confirm=st.booleans(), minutes=st.integers(0, 10))
    def rider_cancels(self, trip, confirm, minutes):
        found = Trip.objects.get(pk=trip)
        now = self._now(minutes)

        def step():
            try:
                services.trip_cancel(
                    trip=found, context=context(found.rider.last_device_id or "device-a"), now=now
                )
            except CancellationFeeUnconfirmed as fee:
                if confirm:
                    services.trip_cancel(
                        trip=found, context=context(found.rider.last_device_id or "device-a"),
                        confirm_fee_cents=fee.fee_cents, now=now,
                    )  # fmt: skip

        self._try(step)

    @rule(trip=trips)
    def driver_cancels(self, trip):
        found = Trip.objects.get(pk=trip)
        if found.driver is not None:
            self._try(
                lambda: services.trip_cancel_by_driver(
                    trip=found, driver=found.driver, now=self._now()
                )
            )

    @rule(trip=trips, decision=st.sampled_from(["approve", "review", "decline"]))
    def verdict(self, trip, decision):
        payment = Payment.objects.get(trip_id=trip)
        self._try(
            lambda: payment_verdict_apply(
                payment_id=str(payment.public_id), decision=decision, now=self._now()
            )
        )

    @rule(trip=trips, outcome=st.sampled_from(sorted({"approved", *REFUSED})))
    def review_outcome(self, trip, outcome):
        payment = Payment.objects.get(trip_id=trip)
        self._try(
            lambda: payment_review_settle(
                payment_id=str(payment.public_id), outcome=outcome, now=self._now()
            )
        )

    @rule(trip=trips, part=st.integers(1, 3000) | st.none())
    def refund(self, trip, part):
        payment = Payment.objects.get(trip_id=trip)
        self._try(
            lambda: services.payment_refund(
                payment=payment,
                refunded_by=self.staff,
                reason="test",
                amount_cents=part,
                now=self._now(),
            )
        )

    @invariant()
    def trips_only_move_forward(self):
        for pk, status in Trip.objects.filter(rider__in=self.riders).values_list("pk", "status"):
            before = self.seen.get(pk)
            assert before is None or status in REACHABLE[before], (pk, before, status)
            self.seen[pk] = status

    @invariant()
    def money_is_conserved(self):
        for p in Payment.objects.filter(rider__in=self.riders):
            assert 0 <= p.refunded_cents <= p.captured_cents <= p.amount_cents, p.pk
            if p.status in (Payment.Status.AUTHORIZED, Payment.Status.DECLINED):
                assert p.captured_cents == 0, p.pk
            if p.status == Payment.Status.VOIDED:
                assert (p.captured_cents, p.refunded_cents) == (0, 0), p.pk
            if p.status == Payment.Status.CAPTURED:
                assert p.captured_cents > 0, p.pk
                assert p.refunded_cents < p.captured_cents, p.pk
            if p.status == Payment.Status.REFUNDED:
                assert p.refunded_cents == p.captured_cents > 0, p.pk
            if p.trip.status == S.PAYMENT_DECLINED:
                assert p.status == Payment.Status.DECLINED, p.pk

    @invariant()
    def a_driver_is_on_a_trip_when_one_is_theirs(self):
        for driver in Driver.objects.filter(pk__in=[d.pk for d in self.drivers]):
            active = Trip.objects.filter(
                driver=driver, status__in=[S.DRIVER_ASSIGNED, S.PICKED_UP]
            ).count()
            assert active <= 1, driver.pk
            assert (driver.status == Driver.Status.ON_TRIP) == (active == 1), driver.pk


TripLifecycle.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.mark.slow
def test_the_trip_lifecycle_keeps_its_invariants():
    TripLifecycle.TestCase().runTest()
