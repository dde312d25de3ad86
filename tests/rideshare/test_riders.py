from datetime import UTC, datetime

import pytest
from django.contrib.auth import get_user_model

from rideshare import services
from rideshare.errors import InvalidInput
from rideshare.models import Rider

from .factories import DEVICE, context, outbox_after, outbox_mark, rider_make, row_counts

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
CONTEXT_JSON = {"device_id": DEVICE, "ip": "203.0.113.7", "lat": None, "lng": None}
GOOD_PASSWORD = "correct-horse-battery"


def test_sign_up_publishes_the_sign_up_before_the_first_login_at_the_sign_up_time():
    mark = outbox_mark()
    rider = services.rider_sign_up(
        username="ana", password=GOOD_PASSWORD, context=context(), now=T0
    )
    rider.refresh_from_db()
    assert rider.signed_up_at == T0
    assert rider.last_device_id == DEVICE
    events = outbox_after(mark)
    assert [(topic, key) for topic, key, _ in events] == [
        ("riders.signed_up.v1", str(rider.public_id)),
        ("riders.device_changed.v1", str(rider.public_id)),
        ("riders.logged_in.v1", str(rider.public_id)),
    ]
    signed_up = events[0][2]
    assert set(signed_up) == {"event_id", "occurred_at", "schema_version", "rider_id", "context"}
    assert signed_up["rider_id"] == str(rider.public_id)
    assert signed_up["context"] == CONTEXT_JSON
    assert signed_up["schema_version"] == 1
    assert [payload["occurred_at"] for _, _, payload in events] == ["2025-05-01T12:00:00Z"] * 3
    assert events[1][2]["previous_device_id"] is None


@pytest.mark.parametrize(
    ("username", "password", "field", "message"),
    [
        ("ANA", GOOD_PASSWORD, "username", "This username is taken; choose another or log in."),
        ("bob", "password", "password", "This password is too common."),
    ],
)
def test_a_failed_sign_up_writes_and_publishes_nothing(username, password, field, message):
    rider_make("ana")
    users = get_user_model().objects.count()
    before = row_counts()
    mark = outbox_mark()
    with pytest.raises(InvalidInput) as caught:
        services.rider_sign_up(username=username, password=password, context=context(), now=T0)
    assert caught.value.errors == {field: message}
    assert row_counts() == before
    assert get_user_model().objects.count() == users
    assert outbox_after(mark) == []
    assert not Rider.objects.filter(user__username="bob").exists()
