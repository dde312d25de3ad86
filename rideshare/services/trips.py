"""Trips: quotes, requests and the guarded lifecycle (see ``rideshare.lifecycle``).

A step from a status the lifecycle does not allow raises ``IllegalTransition`` and writes
nothing: each step locks the trip row, checks its status and writes its rows and events in one
transaction. Every status change is pushed to the rider's open trip pages once that transaction
commits (``rideshare.live``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from events.contracts import (
    Place,
    RiderContext,
    TripAssigned,
    TripCancelled,
    TripCompleted,
    TripRequested,
    TripStarted,
)
from events.outbox import outbox_publish
from rideshare import cards, city, live, pricing
from rideshare.city import LatLng
from rideshare.errors import (
    CancellationFeeUnconfirmed,
    CardDeclined,
    DriverUnavailable,
    InvalidInput,
    NotTripDriver,
)
from rideshare.lifecycle import ASSIGN, COMPLETE, DRIVER_CANCEL, PICK_UP, RIDER_CANCEL, guard
from rideshare.models import Card, Driver, Payment, Quote, Rider, Trip
from rideshare.services.payments import (
    payment_authorize,
    payment_capture,
    payment_settle_at_completion,
    payment_void,
)
from rideshare.services.riders import rider_device_record, rider_lock

QUOTE_TTL = timedelta(minutes=5)

Status = Trip.Status


def _trip_lock(trip: Trip) -> Trip:
    return (
        Trip.objects.select_for_update(of=("self",))
        .select_related("rider", "driver", "card")
        .get(pk=trip.pk)
    )


def _driver_lock(driver: Driver) -> Driver:
    return Driver.objects.select_for_update().get(pk=driver.pk)


def _zone_errors(pickup: LatLng, dropoff: LatLng) -> dict[str, str]:
    errors = {}
    for field, point in (("pickup", pickup), ("dropoff", dropoff)):
        try:
            city.zone_for(point.lat, point.lng)
        except city.OutsideCity as exc:
            errors[field] = f"The {field} point {exc}."
    return errors


def _zones(pickup: LatLng, dropoff: LatLng) -> tuple[str, str]:
    errors = _zone_errors(pickup, dropoff)
    if errors:
        raise InvalidInput(errors)
    return city.zone_for(pickup.lat, pickup.lng), city.zone_for(dropoff.lat, dropoff.lng)


def trip_quote(
    *,
    rider: Rider,
    pickup: LatLng,
    dropoff: LatLng,
    context: RiderContext,
    now: datetime | None = None,
) -> Quote:
    """Price a trip from ``pickup`` to ``dropoff`` and keep the offer for ``QUOTE_TTL``.

    Raise ``InvalidInput`` when a point is outside the city. Publishes only
    ``riders.device_changed.v1``, when the device is new.
    """
    now = now or timezone.now()
    pickup_zone, dropoff_zone = _zones(pickup, dropoff)
    estimate = pricing.fare_estimate(pickup, dropoff)
    with transaction.atomic():
        rider = rider_lock(rider)
        rider_device_record(rider=rider, context=context, now=now)
        return Quote.objects.create(
            rider=rider,
            pickup_lat=pickup.lat,
            pickup_lng=pickup.lng,
            pickup_zone=pickup_zone,
            dropoff_lat=dropoff.lat,
            dropoff_lng=dropoff.lng,
            dropoff_zone=dropoff_zone,
            distance_km=estimate.distance_km,
            duration_minutes=estimate.duration_minutes,
            fare_cents=estimate.fare_cents,
            currency=estimate.currency,
            created_at=now,
            expires_at=now + QUOTE_TTL,
        )


def _request_errors(
    *,
    rider: Rider,
    card: Card,
    quote: Quote | None,
    pickup: LatLng | None,
    dropoff: LatLng | None,
    now: datetime,
) -> dict[str, str]:
    errors: dict[str, str] = {}
    if card.rider_id != rider.pk:
        errors["card_id"] = "No such card in your wallet."
    elif not card.is_active:
        errors["card_id"] = "This card was removed from your wallet."
    elif cards.is_expired(exp_month=card.exp_month, exp_year=card.exp_year, today=now):
        errors["card_id"] = f"This card expired at the end of {card.exp_month:02d}/{card.exp_year}."
    if quote is not None and (pickup is not None or dropoff is not None):
        errors["quote_id"] = "Give either a quote or a pickup and a dropoff, not both."
    elif quote is None and (pickup is None or dropoff is None):
        errors["quote_id"] = "Give a quote, or both a pickup and a dropoff."
    elif quote is not None and quote.rider_id != rider.pk:
        errors["quote_id"] = "No such quote."
    elif quote is not None and quote.expires_at <= now:
        errors["quote_id"] = (
            f"This quote expired at {quote.expires_at:%H:%M:%S} UTC; ask for a new one."
        )
    elif quote is None:
        errors.update(_zone_errors(pickup, dropoff))
    return errors


def trip_request(
    *,
    rider: Rider,
    card: Card,
    context: RiderContext,
    quote: Quote | None = None,
    pickup: LatLng | None = None,
    dropoff: LatLng | None = None,
    now: datetime | None = None,
) -> Trip:
    """Request a trip at the fare of ``quote`` (or of a fresh estimate for pickup/dropoff).

    Authorise the fare on ``card`` first. Approved: the trip is ``requested``; publish
    ``payments.authorized.v1`` then ``trips.requested.v1``. Declined: the trip is kept as
    ``payment_declined`` with its declined payment, ``payments.declined.v1`` is published and
    committed, then ``CardDeclined`` is raised (so do not call this inside a transaction you
    would roll back on that error). Either way ``riders.device_changed.v1`` comes first when the
    device is new. Raise ``InvalidInput`` (writing nothing) for a card that is not the rider's,
    removed or expired, a quote that is not the rider's, expired or used, or a point outside
    the city.
    """
    now = now or timezone.now()
    errors = _request_errors(
        rider=rider, card=card, quote=quote, pickup=pickup, dropoff=dropoff, now=now
    )
    if errors:
        raise InvalidInput(errors)
    if quote is not None:
        pickup, dropoff = quote.pickup, quote.dropoff
        pickup_zone, dropoff_zone = quote.pickup_zone, quote.dropoff_zone
        estimate = pricing.FareEstimate(
            distance_km=quote.distance_km,
            duration_minutes=quote.duration_minutes,
            fare_cents=quote.fare_cents,
            currency=quote.currency,
        )
    else:
        pickup_zone, dropoff_zone = _zones(pickup, dropoff)
        estimate = pricing.fare_estimate(pickup, dropoff)

    with transaction.atomic():
        rider = rider_lock(rider)
        if quote is not None and Trip.objects.filter(quote=quote).exists():
            raise InvalidInput({"quote_id": "This quote was already used; ask for a new one."})
        rider_device_record(rider=rider, context=context, now=now)
        trip = Trip.objects.create(
            rider=rider,
            card=card,
            quote=quote,
            pickup_lat=pickup.lat,
            pickup_lng=pickup.lng,
            pickup_zone=pickup_zone,
            dropoff_lat=dropoff.lat,
            dropoff_lng=dropoff.lng,
            dropoff_zone=dropoff_zone,
            distance_km=estimate.distance_km,
            duration_minutes=estimate.duration_minutes,
            fare_cents=estimate.fare_cents,
            currency=estimate.currency,
            status=Status.REQUESTED,
            requested_at=now,
        )
        payment = payment_authorize(trip=trip, card=card, context=context, now=now)
        if payment.status == Payment.Status.DECLINED:
            # The quote stays usable: the rider may retry it with another card.
            trip.status = Status.PAYMENT_DECLINED
            trip.quote = None
            trip.save(update_fields=["status", "quote"])
        else:
            outbox_publish(
                TripRequested(
                    trip_id=str(trip.public_id),
                    rider_id=str(rider.public_id),
                    card_id=str(card.public_id),
                    pickup=Place(lat=pickup.lat, lng=pickup.lng, zone=pickup_zone),
                    dropoff=Place(lat=dropoff.lat, lng=dropoff.lng, zone=dropoff_zone),
                    distance_km=trip.distance_km,
                    fare_cents=trip.fare_cents,
                    currency=trip.currency,
                    context=context,
                    occurred_at=now,
                )
            )
        live.trip_changed_on_commit(trip_id=str(trip.public_id), status=trip.status)
    if payment.status == Payment.Status.DECLINED:
        raise CardDeclined(
            f"The {card.brand} card ending {card.last4} was declined ({payment.decline_code}).",
            decline_code=payment.decline_code,
            trip_id=str(trip.public_id),
            payment_id=str(payment.public_id),
        )
    return trip


def trip_assign(*, trip: Trip, driver: Driver, now: datetime | None = None) -> Trip:
    """Assign the available ``driver`` to the requested ``trip``; the driver is then on trip.

    Publish ``trips.assigned.v1``. Raise ``IllegalTransition`` unless the trip is requested and
    ``DriverUnavailable`` unless the driver is available.
    """
    now = now or timezone.now()
    with transaction.atomic():
        trip = _trip_lock(trip)
        guard(trip, ASSIGN)
        driver = _driver_lock(driver)
        if driver.status != Driver.Status.AVAILABLE:
            raise DriverUnavailable(f"Driver {driver.public_id} is {driver.status}, not available.")
        trip.driver = driver
        trip.status = Status.DRIVER_ASSIGNED
        trip.assigned_at = now
        trip.save(update_fields=["driver", "status", "assigned_at"])
        driver.status = Driver.Status.ON_TRIP
        driver.save(update_fields=["status"])
        outbox_publish(
            TripAssigned(
                trip_id=str(trip.public_id),
                rider_id=str(trip.rider.public_id),
                driver_id=str(driver.public_id),
                occurred_at=now,
            )
        )
        live.trip_changed_on_commit(trip_id=str(trip.public_id), status=trip.status)
    return trip


def _check_driver(trip: Trip, driver: Driver) -> None:
    if trip.driver_id != driver.pk:
        raise NotTripDriver(f"Trip {trip.public_id} is not assigned to driver {driver.public_id}.")


def trip_pick_up(*, trip: Trip, driver: Driver, now: datetime | None = None) -> Trip:
    """Record that the trip's driver picked the rider up.

    Publish ``trips.started.v1``. Raise ``IllegalTransition`` unless the trip is
    driver_assigned and ``NotTripDriver`` when ``driver`` is not the trip's driver.
    """
    now = now or timezone.now()
    with transaction.atomic():
        trip = _trip_lock(trip)
        guard(trip, PICK_UP)
        _check_driver(trip, driver)
        trip.status = Status.PICKED_UP
        trip.picked_up_at = now
        trip.save(update_fields=["status", "picked_up_at"])
        Driver.objects.filter(pk=driver.pk).update(
            zone=trip.pickup_zone, lat=trip.pickup_lat, lng=trip.pickup_lng
        )
        outbox_publish(
            TripStarted(
                trip_id=str(trip.public_id),
                rider_id=str(trip.rider.public_id),
                driver_id=str(driver.public_id),
                occurred_at=now,
            )
        )
        live.trip_changed_on_commit(trip_id=str(trip.public_id), status=trip.status)
    return trip


def trip_complete(*, trip: Trip, driver: Driver, now: datetime | None = None) -> Trip:
    """Complete the trip at the dropoff, capture its fare and make the driver available again.

    A payment in review is not captured until an analyst decides; one analysts refused is
    voided (``payment_settle_at_completion``). Publish ``trips.completed.v1`` then
    ``payments.captured.v1`` when captured. Raise ``IllegalTransition`` unless the trip is
    picked_up and ``NotTripDriver`` when ``driver`` is not the trip's driver.
    """
    now = now or timezone.now()
    with transaction.atomic():
        trip = _trip_lock(trip)
        guard(trip, COMPLETE)
        _check_driver(trip, driver)
        driver = _driver_lock(driver)
        trip.status = Status.COMPLETED
        trip.completed_at = now
        trip.save(update_fields=["status", "completed_at"])
        driver.status = Driver.Status.AVAILABLE
        driver.zone, driver.lat, driver.lng = trip.dropoff_zone, trip.dropoff_lat, trip.dropoff_lng
        driver.save(update_fields=["status", "zone", "lat", "lng"])
        outbox_publish(
            TripCompleted(
                trip_id=str(trip.public_id),
                rider_id=str(trip.rider.public_id),
                driver_id=str(driver.public_id),
                fare_cents=trip.fare_cents,
                distance_km=trip.distance_km,
                occurred_at=now,
            )
        )
        # Keep the caller's trip.payment current: the capture works on a locked copy.
        trip.payment = payment_settle_at_completion(
            payment=trip.payment, amount_cents=trip.fare_cents, now=now
        )
        live.trip_changed_on_commit(trip_id=str(trip.public_id), status=trip.status)
    return trip


def _cancel(trip: Trip, *, by: str, fee_cents: int, now: datetime, reason: str = "") -> None:
    stage = trip.status
    trip.status = Status.CANCELLED
    trip.cancelled_at = now
    trip.cancelled_by = by
    trip.cancel_reason = reason
    trip.cancellation_fee_cents = fee_cents
    trip.save(
        update_fields=[
            "status",
            "cancelled_at",
            "cancelled_by",
            "cancel_reason",
            "cancellation_fee_cents",
        ]
    )
    if trip.driver_id is not None:
        Driver.objects.filter(pk=trip.driver_id).update(status=Driver.Status.AVAILABLE)
    outbox_publish(
        TripCancelled(
            trip_id=str(trip.public_id),
            rider_id=str(trip.rider.public_id),
            driver_id=str(trip.driver.public_id) if trip.driver_id else None,
            cancelled_by=by,
            fee_cents=fee_cents,
            stage=stage,
            reason=reason or None,
            occurred_at=now,
        )
    )
    if fee_cents:
        trip.payment = payment_capture(payment=trip.payment, amount_cents=fee_cents, now=now)
    else:
        trip.payment = payment_void(payment=trip.payment, now=now)
    live.trip_changed_on_commit(trip_id=str(trip.public_id), status=trip.status)


def trip_cancel(
    *,
    trip: Trip,
    context: RiderContext,
    confirm_fee_cents: int = 0,
    now: datetime | None = None,
) -> Trip:
    """Cancel ``trip`` for its rider, charging the cancellation fee that applies at ``now``.

    Free before a driver is assigned and within ``pricing.CANCELLATION_GRACE`` of the
    assignment (the hold is voided); later the fee is captured from the hold. When a fee
    applies, the rider must have been shown it: ``confirm_fee_cents`` must equal it, otherwise
    ``CancellationFeeUnconfirmed`` (carrying the current fee) is raised and nothing is written.
    Publish ``trips.cancelled.v1``, then ``payments.captured.v1`` when a fee is charged
    (``riders.device_changed.v1`` first when the device is new). Raise ``IllegalTransition``
    once the rider is picked up or the trip is over.
    """
    now = now or timezone.now()
    with transaction.atomic():
        rider = rider_lock(trip.rider)
        rider_device_record(rider=rider, context=context, now=now)
        trip = _trip_lock(trip)
        guard(trip, RIDER_CANCEL)
        fee = pricing.rider_cancellation_fee_cents(
            assigned_at=trip.assigned_at, fare_cents=trip.fare_cents, now=now
        )
        if fee and confirm_fee_cents != fee:
            raise CancellationFeeUnconfirmed(
                f"Cancelling now costs {fee} cents ({trip.currency}); confirm that amount "
                f"to cancel (confirmed: {confirm_fee_cents}).",
                fee_cents=fee,
                currency=trip.currency,
            )
        _cancel(trip, by=Trip.CancelledBy.RIDER, fee_cents=fee, now=now)
    return trip


def trip_cancel_by_driver(*, trip: Trip, driver: Driver, now: datetime | None = None) -> Trip:
    """Cancel ``trip`` for its assigned driver: free for the rider, the hold is voided.

    The driver becomes available. Publish ``trips.cancelled.v1``. Raise ``IllegalTransition``
    unless the trip is driver_assigned and ``NotTripDriver`` when ``driver`` is not its driver.
    """
    now = now or timezone.now()
    with transaction.atomic():
        trip = _trip_lock(trip)
        guard(trip, DRIVER_CANCEL)
        _check_driver(trip, driver)
        _driver_lock(driver)
        _cancel(trip, by=Trip.CancelledBy.DRIVER, fee_cents=0, now=now)
    return trip
