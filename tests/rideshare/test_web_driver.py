import pytest

from rideshare.models import Trip

from .factories import (
    driver_make,
    outbox_after,
    outbox_mark,
    row_counts,
    trip_make,
    web_client,
    web_rider,
)

pytestmark = pytest.mark.django_db


def _step(client, trip: Trip, step: str):
    return client.post(f"/driver/trips/{trip.public_id}/{step}", follow=True)


def test_the_console_takes_a_trip_from_request_to_completion():
    trip = trip_make(web_rider())
    driver = driver_make()
    client = web_client(driver.user)
    console = client.get("/driver/")
    assert console.status_code == 200
    assert [t.public_id for t in console.context["board"].requested] == [trip.public_id]
    assert f'action="/driver/trips/{trip.public_id}/accept"' in console.content.decode()

    mark = outbox_mark()
    accepted = _step(client, trip, "accept")
    assert accepted.redirect_chain == [("/driver/", 302)]
    html = accepted.content.decode()
    assert "Trip accepted: drive to the pickup." in html
    assert f'action="/driver/trips/{trip.public_id}/pick-up"' in html
    assert accepted.context["board"].active.public_id == trip.public_id

    assert "Rider picked up" in _step(client, trip, "pick-up").content.decode()
    completed = _step(client, trip, "complete")
    assert "Trip completed." in completed.content.decode()
    assert completed.context["board"].active is None
    assert [t.public_id for t in completed.context["board"].recent] == [trip.public_id]
    trip.refresh_from_db()
    assert (trip.status, trip.driver, trip.payment.status) == ("completed", driver, "captured")
    assert [topic for topic, _, _ in outbox_after(mark)] == [
        "trips.assigned.v1",
        "trips.started.v1",
        "trips.completed.v1",
        "payments.captured.v1",
    ]


def test_the_waiting_list_fragment_is_what_the_console_polls():
    trip = trip_make(web_rider())
    response = web_client(driver_make().user).get("/driver/waiting")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<h2>Waiting for a driver</h2>" in html
    assert f'data-trip-id="{trip.public_id}"' in html
    assert "<html" not in html


def test_a_trip_another_driver_took_is_refused_with_a_message():
    trip = trip_make(web_rider())
    first, second = driver_make(), driver_make()
    _step(web_client(first.user), trip, "accept")
    before = row_counts()
    response = _step(web_client(second.user), trip, "accept")
    assert response.redirect_chain == [("/driver/", 302)]
    assert "This trip is no longer waiting for a driver." in response.content.decode()
    assert row_counts() == before
    trip.refresh_from_db()
    assert trip.driver == first


def test_a_driver_on_a_trip_cannot_accept_another():
    rider = web_rider()
    first = trip_make(rider)
    second = trip_make(web_rider())
    driver = driver_make()
    client = web_client(driver.user)
    _step(client, first, "accept")
    before = row_counts()
    response = _step(client, second, "accept")
    assert f"Driver {driver.public_id} is on_trip, not available." in response.content.decode()
    assert row_counts() == before
    second.refresh_from_db()
    assert second.status == "requested"


def test_an_unknown_step_is_404():
    trip = trip_make(web_rider())
    response = web_client(driver_make().user).post(f"/driver/trips/{trip.public_id}/teleport")
    assert response.status_code == 404


def test_the_console_is_for_drivers_and_posts_need_the_csrf_token():
    trip = trip_make(web_rider())
    driver = driver_make()
    assert web_client().get("/driver/")["Location"] == "/login/?next=/driver/"
    assert web_client(web_rider().user).get("/driver/").status_code == 403
    before = row_counts()
    client = web_client(driver.user, enforce_csrf_checks=True)
    assert client.post(f"/driver/trips/{trip.public_id}/accept").status_code == 403
    assert row_counts() == before
