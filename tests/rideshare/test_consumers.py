"""The trip status websocket, driven through the whole ASGI stack (origin check, session)."""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import connections, transaction

from config.asgi import application
from rideshare import services

from .factories import driver_make, trip_make, web_client, web_rider

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://127.0.0.1")


def session_cookie(user) -> tuple[bytes, bytes]:
    """The cookie header of a browser logged in as ``user``."""
    name = settings.SESSION_COOKIE_NAME
    return (b"cookie", f"{name}={web_client(user).cookies[name].value}".encode())


def _socket(trip, *headers) -> WebsocketCommunicator:
    return WebsocketCommunicator(application, f"/ws/trips/{trip.public_id}/", headers=list(headers))


def fresh_thread(test):
    """Run the test on a thread of its own, where ``async_to_sync`` may start an event loop.

    Once a browser test has started Playwright (a session fixture), its sync API leaves an
    event loop marked as running in the main thread, where ``async_to_sync`` refuses to run.
    The thread's database connections are closed when it is done; what it reads must be
    committed (``transaction=True``), as it has connections of its own.
    """

    def call(*args, **kwargs):
        try:
            return test(*args, **kwargs)
        finally:
            connections.close_all()

    @functools.wraps(test)
    def run(*args, **kwargs):
        with ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(call, *args, **kwargs).result()

    return run


@fresh_thread
def test_a_rider_gets_the_current_state_then_every_change():
    rider = web_rider()
    trip = trip_make(rider)
    driver = driver_make()
    cookie = session_cookie(rider.user)

    async def body():
        socket = _socket(trip, ORIGIN, cookie)
        connected, _ = await socket.connect()
        assert connected
        first = await socket.receive_json_from(timeout=5)
        assert (first["type"], first["trip_id"], first["status"], first["final"]) == (
            "trip.state",
            str(trip.public_id),
            "requested",
            False,
        )
        assert "Looking for a driver" in first["html"]
        await database_sync_to_async(services.trip_assign)(trip=trip, driver=driver)
        pushed = await socket.receive_json_from(timeout=5)
        assert (pushed["status"], pushed["final"]) == ("driver_assigned", False)
        assert driver.name in pushed["html"]
        assert driver.vehicle_plate in pushed["html"]
        await database_sync_to_async(services.trip_cancel_by_driver)(trip=trip, driver=driver)
        last = await socket.receive_json_from(timeout=5)
        assert (last["status"], last["final"]) == ("cancelled", True)
        assert "Cancelled by the driver." in last["html"]
        await socket.disconnect()

    async_to_sync(body)()


@fresh_thread
def test_a_reconnecting_page_catches_up_on_what_it_missed():
    rider = web_rider()
    trip = trip_make(rider)
    driver = driver_make()
    cookie = session_cookie(rider.user)

    async def body():
        socket = _socket(trip, ORIGIN, cookie)
        assert (await socket.connect())[0]
        assert (await socket.receive_json_from(timeout=5))["status"] == "requested"
        await socket.disconnect()
        # Changes while no page listens...
        await database_sync_to_async(services.trip_assign)(trip=trip, driver=driver)
        await database_sync_to_async(services.trip_pick_up)(trip=trip, driver=driver)
        # ...are what the next connection starts with.
        again = _socket(trip, ORIGIN, cookie)
        assert (await again.connect())[0]
        assert (await again.receive_json_from(timeout=5))["status"] == "picked_up"
        assert await again.receive_nothing(timeout=0.2)
        await again.disconnect()

    async_to_sync(body)()


@fresh_thread
def test_a_change_rolled_back_is_never_pushed():
    rider = web_rider()
    trip = trip_make(rider)
    driver = driver_make()
    cookie = session_cookie(rider.user)

    class RolledBack(Exception):
        pass

    def assign_then_roll_back():
        try:
            with transaction.atomic():
                services.trip_assign(trip=trip, driver=driver)
                raise RolledBack
        except RolledBack:
            pass

    async def body():
        socket = _socket(trip, ORIGIN, cookie)
        assert (await socket.connect())[0]
        await socket.receive_json_from(timeout=5)
        await database_sync_to_async(assign_then_roll_back)()
        assert await socket.receive_nothing(timeout=0.3)
        await socket.disconnect()

    async_to_sync(body)()


@pytest.mark.parametrize("who", ["another rider", "a driver", "nobody"])
@fresh_thread
def test_only_the_trips_rider_may_listen(who):
    trip = trip_make(web_rider())
    headers = [ORIGIN]
    if who == "another rider":
        headers.append(session_cookie(web_rider().user))
    elif who == "a driver":
        headers.append(session_cookie(driver_make().user))

    async def body():
        socket = _socket(trip, *headers)
        connected, _ = await socket.connect()
        assert not connected

    async_to_sync(body)()


@fresh_thread
def test_a_socket_from_another_site_is_refused():
    rider = web_rider()
    trip = trip_make(rider)
    cookie = session_cookie(rider.user)

    async def body():
        socket = _socket(trip, (b"origin", b"https://evil.example"), cookie)
        connected, _ = await socket.connect()
        assert not connected

    async_to_sync(body)()


@fresh_thread
def test_an_unknown_trip_is_refused():
    rider = web_rider()
    cookie = session_cookie(rider.user)

    class Missing:
        public_id = "00000000-0000-4000-8000-000000000000"

    async def body():
        socket = _socket(Missing, ORIGIN, cookie)
        connected, _ = await socket.connect()
        assert not connected

    async_to_sync(body)()
