import pytest
from django.test import Client

from .factories import bearer, driver_make, outbox_after, outbox_mark, rider_make, trip_make

pytestmark = pytest.mark.django_db


def _post(path: str, headers: dict):
    return Client().post(path, headers=headers)


def test_a_driver_takes_a_trip_through_to_completion():
    rider = rider_make()
    trip = trip_make(rider)
    driver = driver_make()
    headers = bearer(driver.user, device_id="car-1")
    open_trips = Client().get("/api/driver/trips", headers=headers).json()
    assert [t["id"] for t in open_trips] == [str(trip.public_id)]
    assert (open_trips[0]["card"], open_trips[0]["payment_status"]) == (None, None)
    base = f"/api/driver/trips/{trip.public_id}"
    mark = outbox_mark()
    accepted = _post(f"{base}/accept", headers)
    assert accepted.status_code == 200
    assert accepted.json()["status"] == "driver_assigned"
    assert accepted.json()["driver"] == {
        "id": str(driver.public_id),
        "name": driver.name,
        "vehicle_make": "Toyota",
        "vehicle_model": "Prius",
        "vehicle_plate": driver.vehicle_plate,
    }
    assert _post(f"{base}/pick-up", headers).json()["status"] == "picked_up"
    completed = _post(f"{base}/complete", headers)
    assert completed.json()["status"] == "completed"
    assert [topic for topic, _, _ in outbox_after(mark)] == [
        "trips.assigned.v1",
        "trips.started.v1",
        "trips.completed.v1",
        "payments.captured.v1",
    ]
    rider_view = Client().get(f"/api/trips/{trip.public_id}", headers=bearer(rider.user)).json()
    assert (rider_view["status"], rider_view["payment_status"]) == ("completed", "captured")


def test_a_trip_assigned_to_another_driver_is_404_and_illegal_steps_are_409():
    trip = trip_make()
    first = bearer(driver_make().user, device_id="car-1")
    second = bearer(driver_make().user, device_id="car-2")
    base = f"/api/driver/trips/{trip.public_id}"
    early = _post(f"{base}/complete", first)
    assert early.status_code == 409
    assert early.json()["code"] == "illegal_transition"
    assert _post(f"{base}/accept", first).status_code == 200
    mark = outbox_mark()
    for step in ("accept", "pick-up", "complete", "cancel"):
        response = _post(f"{base}/{step}", second)
        assert response.status_code == 404, step
    assert Client().get("/api/driver/trips", headers=second).json() == []
    assert outbox_after(mark) == []


def test_a_driver_cancellation_is_free():
    trip = trip_make()
    headers = bearer(driver_make().user, device_id="car-1")
    base = f"/api/driver/trips/{trip.public_id}"
    _post(f"{base}/accept", headers)
    response = _post(f"{base}/cancel", headers)
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["cancelled_by"], body["cancellation_fee_cents"]) == (
        "cancelled",
        "driver",
        0,
    )


def test_a_busy_driver_cannot_accept_another_trip():
    headers = bearer(driver_make().user, device_id="car-1")
    first, second = trip_make(), trip_make()
    assert _post(f"/api/driver/trips/{first.public_id}/accept", headers).status_code == 200
    response = _post(f"/api/driver/trips/{second.public_id}/accept", headers)
    assert response.status_code == 409
    assert response.json()["code"] == "driver_unavailable"
