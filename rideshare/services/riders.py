"""Accounts: staff, riders and drivers; logins, API tokens and the devices riders act from."""

from __future__ import annotations

import secrets
from datetime import datetime

from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from events.contracts import DeviceChanged, RiderContext, RiderLoggedIn, RiderSignedUp
from events.outbox import outbox_publish
from rideshare import city
from rideshare.errors import InvalidInput
from rideshare.models import ApiToken, Driver, Rider


@transaction.atomic
def staff_user_ensure(*, username: str, password: str) -> AbstractUser:
    """Create the staff superuser ``username`` or reset its password; idempotent on the name."""
    user_model = get_user_model()
    user, _ = user_model.objects.get_or_create(username=username)
    user.is_staff = True
    user.is_superuser = True
    user.set_password(password)
    user.save()
    return user


@transaction.atomic
def rider_ensure(*, username: str, password: str, home_zone: str = "") -> Rider:
    """Create the user ``username`` with a rider profile, or reset its password.

    Idempotent on the name; publishes nothing (a rider's first event is its first action).
    """
    if home_zone:
        city.zone_bounds(home_zone)  # raises ValueError for a zone the city does not have
    user, _ = get_user_model().objects.get_or_create(username=username)
    user.set_password(password)
    user.save()
    rider, created = Rider.objects.get_or_create(user=user, defaults={"home_zone": home_zone})
    if not created and home_zone and rider.home_zone != home_zone:
        rider.home_zone = home_zone
        rider.save(update_fields=["home_zone"])
    return rider


@transaction.atomic
def driver_ensure(
    *,
    username: str,
    password: str,
    name: str,
    vehicle_make: str,
    vehicle_model: str,
    vehicle_plate: str,
    zone: str,
) -> Driver:
    """Create or update the driver ``username``, available at the centre of ``zone``.

    Idempotent on the user name; publishes nothing.
    """
    centre = city.zone_centre(zone)
    user, _ = get_user_model().objects.get_or_create(username=username)
    user.set_password(password)
    user.save()
    driver, _ = Driver.objects.update_or_create(
        user=user,
        defaults={
            "name": name,
            "vehicle_make": vehicle_make,
            "vehicle_model": vehicle_model,
            "vehicle_plate": vehicle_plate,
            "status": Driver.Status.AVAILABLE,
            "zone": zone,
            "lat": centre.lat,
            "lng": centre.lng,
        },
    )
    return driver


def rider_lock(rider: Rider) -> Rider:
    """Return ``rider`` re-read under a row lock, serialising that rider's actions.

    Run inside the action's transaction: checks made after the lock (a quote already used, a
    card already in the wallet) cannot race another action of the same rider.
    """
    return Rider.objects.select_for_update().get(pk=rider.pk)


def rider_device_record(*, rider: Rider, context: RiderContext, now: datetime) -> None:
    """Remember the device of the rider's action; publish ``riders.device_changed.v1`` if new.

    A device differs when it is not the device of the rider's previous action, including the
    very first device seen (``previous_device_id`` is then null). Run inside the action's
    transaction, on a locked rider (``rider_lock``); ``rider`` is updated in place.
    """
    previous = rider.last_device_id or None
    if previous == context.device_id:
        return
    outbox_publish(
        DeviceChanged(
            rider_id=str(rider.public_id),
            previous_device_id=previous,
            context=context,
            occurred_at=now,
        )
    )
    rider.last_device_id = context.device_id
    rider.save(update_fields=["last_device_id"])


def rider_login(*, user: AbstractUser, context: RiderContext, now: datetime | None = None) -> Rider:
    """Record that the rider ``user`` logged in from ``context``.

    Publish ``riders.logged_in.v1`` (after ``riders.device_changed.v1`` when the device is new).
    Raise ``InvalidInput`` when ``user`` has no rider profile.
    """
    now = now or timezone.now()
    with transaction.atomic():
        try:
            rider = Rider.objects.select_for_update().get(user=user)
        except Rider.DoesNotExist as exc:
            raise InvalidInput({"username": "This account is not a rider."}) from exc
        rider_device_record(rider=rider, context=context, now=now)
        outbox_publish(
            RiderLoggedIn(rider_id=str(rider.public_id), context=context, occurred_at=now)
        )
    return rider


USERNAME_TAKEN = "This username is taken; choose another or log in."


def _sign_up_errors(*, username: str, password: str) -> dict[str, str]:
    user_model = get_user_model()
    errors: dict[str, str] = {}
    max_length = user_model._meta.get_field("username").max_length
    if not username:
        errors["username"] = "Choose a username."
    elif len(username) > max_length:
        errors["username"] = f"Use at most {max_length} characters."
    else:
        try:
            user_model.username_validator(username)
        except ValidationError as exc:
            errors["username"] = " ".join(exc.messages)
        else:
            if user_model.objects.filter(username__iexact=username).exists():
                errors["username"] = USERNAME_TAKEN
    try:
        password_validation.validate_password(password, user=user_model(username=username))
    except ValidationError as exc:
        errors["password"] = " ".join(exc.messages)
    return errors


def rider_sign_up(
    *, username: str, password: str, context: RiderContext, now: datetime | None = None
) -> Rider:
    """Create the user ``username`` with a rider profile; signing up is the rider's first login.

    The username must be free (ignoring case) and the password pass the configured password
    validators. Publish ``riders.signed_up.v1`` (at the rider's ``signed_up_at``), then
    ``riders.device_changed.v1`` and ``riders.logged_in.v1`` (through ``rider_login``), all in
    the transaction that creates the rider. Raise ``InvalidInput`` (writing and publishing
    nothing) with ``username`` and ``password`` messages when a check fails.
    """
    now = now or timezone.now()
    username = username.strip()
    errors = _sign_up_errors(username=username, password=password)
    if errors:
        raise InvalidInput(errors)
    with transaction.atomic():
        try:
            # A savepoint: a concurrent sign-up with the same name loses here, not with a 500.
            with transaction.atomic():
                user = get_user_model().objects.create_user(username=username, password=password)
        except IntegrityError as exc:
            raise InvalidInput({"username": USERNAME_TAKEN}) from exc
        rider = Rider.objects.create(user=user, signed_up_at=now)
        outbox_publish(
            RiderSignedUp(
                rider_id=str(rider.public_id), context=context, occurred_at=rider.signed_up_at
            )
        )
        return rider_login(user=user, context=context, now=now)


def api_token_create(
    *, user: AbstractUser, context: RiderContext, now: datetime | None = None
) -> str:
    """Create a bearer token for ``user`` and return its key (40 hex characters), shown once.

    Only the key's SHA-256 is stored. For a rider this is a login: ``rider_login`` runs in the
    same transaction (publishing ``riders.logged_in.v1``).
    """
    now = now or timezone.now()
    key = secrets.token_hex(20)
    with transaction.atomic():
        ApiToken.objects.create(user=user, key_hash=ApiToken.hash_key(key), created_at=now)
        if Rider.objects.filter(user=user).exists():
            rider_login(user=user, context=context, now=now)
    return key
