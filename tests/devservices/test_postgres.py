import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from tests.conftest import service_unavailable

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


@pytest.fixture(autouse=True)
def _require_postgres():
    if connection.vendor != "postgresql":
        service_unavailable("postgresql", "the test database is SQLite (TEST_DATABASE=sqlite)")


def test_django_orm_query_runs_on_postgresql():
    user_model = get_user_model()
    user_model.objects.create_user(username="rider-1", email="r1@example.com")
    user_model.objects.create_user(username="rider-2", email="r2@example.com")

    usernames = list(
        user_model.objects.filter(username__startswith="rider-")
        .order_by("username")
        .values_list("username", flat=True)
    )

    assert usernames == ["rider-1", "rider-2"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT version(), current_setting('server_version_num')::int")
        version, number = cursor.fetchone()
    assert version.startswith("PostgreSQL ")
    assert number >= 150000


def test_transaction_rollback_leaves_nothing():
    from django.db import IntegrityError, transaction

    user_model = get_user_model()
    user_model.objects.create_user(username="dup")

    def create_two() -> None:
        with transaction.atomic():
            user_model.objects.create_user(username="other")
            user_model.objects.create_user(username="dup")

    with pytest.raises(IntegrityError):
        create_two()
    assert not user_model.objects.filter(username="other").exists()
