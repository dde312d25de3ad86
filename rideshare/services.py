"""Writes of the booking side. Keyword-only, named <noun>_<verb>."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.db import transaction


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
