"""Writes of the ML console's people: the ML engineers."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import Group, Permission

from ml.access import MANAGE_PERMISSION, ML_ENGINEER_GROUP


def ml_engineer_ensure(*, username: str, password: str) -> AbstractBaseUser:
    """Create the ML engineer ``username`` (not staff: the ``ml_engineer`` group, which holds
    ``ml.manage_models``) or reset its password; idempotent on the name."""
    group, _ = Group.objects.get_or_create(name=ML_ENGINEER_GROUP)
    app, codename = MANAGE_PERMISSION.split(".")
    group.permissions.add(Permission.objects.get(content_type__app_label=app, codename=codename))
    user, _ = get_user_model().objects.get_or_create(username=username)
    user.set_password(password)
    user.save()
    user.groups.add(group)
    return user
