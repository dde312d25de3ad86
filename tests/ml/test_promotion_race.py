"""A promotion racing a rollback (two processes' transactions at once, on PostgreSQL) leaves
exactly one champion, whichever wins, and both changes are recorded."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from fraud.models import Deployment
from ml.models import RoleChange
from ml.services import model_promote
from tests.ml.registered import model_registered

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_promotion_racing_a_rollback_leaves_one_champion():
    if connection.vendor != "postgresql":
        pytest.fail("this race needs PostgreSQL's row locks (TEST_DATABASE=sqlite)")
    first, second, third = model_registered(1), model_registered(2), model_registered(3)
    model_promote(version=first)
    errors: list[BaseException] = []

    for round_ in range(10):
        rival, previous = (second, third) if round_ % 2 else (third, second)
        start = threading.Barrier(2)

        def deploy(version: str, reason: str, start: threading.Barrier = start) -> None:
            try:
                start.wait(5)
                model_promote(version=version, reason=reason)
            except BaseException as exc:  # reported below
                errors.append(exc)
            finally:
                connection.close()

        threads = [
            threading.Thread(target=deploy, args=(rival, "promoted by a person")),
            threading.Thread(target=deploy, args=(previous, "rolled back")),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)

        assert errors == []
        champions = list(Deployment.objects.filter(role="champion"))
        assert len(champions) == 1, champions
        assert champions[0].model_version in (rival, previous)
    assert RoleChange.objects.filter(role="champion").count() >= 11
