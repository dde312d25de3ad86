"""The card processor's chargeback endpoint: authenticated, validated, idempotent, publishing
``labels.chargeback_filed.v1`` through the outbox."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client

from rideshare import services
from rideshare.models import Chargeback, Payment

from .factories import bearer, driver_make, outbox_after, outbox_mark, rider_make, trip_make

pytestmark = pytest.mark.django_db

URL = "/api/processor/chargebacks"
KEY = {"Authorization": "Bearer processor-test-key"}


@pytest.fixture(autouse=True)
def _key(settings):
    settings.PROCESSOR_API_KEY = "processor-test-key"


def _captured() -> Payment:
    trip = trip_make()
    driver = driver_make()
    services.trip_assign(trip=trip, driver=driver)
    services.trip_pick_up(trip=trip, driver=driver)
    services.trip_complete(trip=trip, driver=driver)
    return Payment.objects.select_related("trip", "card", "rider").get(trip=trip)


def _post(body: dict, headers: dict = KEY):
    return Client().post(URL, json.dumps(body), content_type="application/json", headers=headers)


def _body(payment: Payment, **changes) -> dict:
    # The trip was made a moment ago: filed just after its payment, not in the future.
    filed = payment.created_at
    return {
        "chargeback_id": "cb-1001",
        "payment_id": str(payment.public_id),
        "reason_code": "10.4",
        "amount_cents": payment.captured_cents,
        "filed_at": filed.isoformat(),
        **changes,
    }


def test_a_chargeback_is_recorded_once_and_published_once_as_a_label():
    payment = _captured()
    mark = outbox_mark()
    first = _post(_body(payment))
    again = _post(_body(payment))
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["chargeback_id"] == again.json()["chargeback_id"] == "cb-1001"
    assert Chargeback.objects.count() == 1
    [(topic, key, event)] = outbox_after(mark)
    assert (topic, key) == ("labels.chargeback_filed.v1", str(payment.card.public_id))
    assert {
        k: event[k] for k in ("chargeback_id", "payment_id", "reason_code", "amount_cents")
    } == {
        "chargeback_id": "cb-1001",
        "payment_id": str(payment.public_id),
        "reason_code": "10.4",
        "amount_cents": payment.captured_cents,
    }
    assert (event["trip_id"], event["pickup_zone"]) == (str(payment.trip.public_id), "Z-1-1")
    assert event["driver_id"] == str(payment.trip.driver.public_id)
    # The label counts from when it was received, not from the bank's filing date.
    received = Chargeback.objects.get().received_at
    assert datetime.fromisoformat(event["occurred_at"]) == received
    assert datetime.fromisoformat(event["filed_at"]) < received


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"reason_code": "99.9"}, "reason_code"),
        ({"reason_code": "fraud"}, "reason_code"),
        ({"amount_cents": 0}, "amount_cents"),
        ({"amount_cents": 10**6}, "amount_cents"),
        ({"filed_at": (datetime.now(UTC) + timedelta(days=1)).isoformat()}, "filed_at"),
    ],
)
def test_bad_input_is_refused_with_the_field_and_nothing_is_written(changes, field):
    payment = _captured()
    mark = outbox_mark()
    response = _post(_body(payment, **changes))
    assert response.status_code == 422
    assert list(response.json()["errors"]) == [field]
    assert (Chargeback.objects.count(), outbox_after(mark)) == (0, [])


def test_a_mastercard_reason_code_is_accepted():
    assert _post(_body(_captured(), reason_code="4837")).status_code == 201


def test_an_unknown_payment_is_404_and_nothing_is_written():
    mark = outbox_mark()
    for payment_id in (str(uuid.uuid4()), "not-a-payment"):
        response = _post(_body(_captured(), payment_id=payment_id, chargeback_id=payment_id))
        assert response.status_code == 404
        assert response.json()["code"] == "unknown_payment"
    assert Chargeback.objects.count() == 0
    assert [t for t, _, _ in outbox_after(mark) if t.startswith("labels.")] == []


def test_only_the_processors_key_is_let_in(settings):
    payment = _captured()
    assert _post(_body(payment), headers={}).status_code == 401
    assert _post(_body(payment), headers={"Authorization": "Bearer wrong"}).status_code == 401
    rider = rider_make()
    assert _post(_body(payment), headers=bearer(rider.user)).status_code == 401
    settings.PROCESSOR_API_KEY = ""
    unconfigured = _post(_body(payment))
    assert unconfigured.status_code == 503
    assert "PROCESSOR_API_KEY" in unconfigured.json()["detail"]
    assert Chargeback.objects.count() == 0
