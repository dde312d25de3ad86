"""The live flags socket, through the whole ASGI stack (origin check, session), and the push."""

from __future__ import annotations

import asyncio
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from config.asgi import application
from fraud import consumers, live
from fraud.models import FraudScore
from tests.rideshare.test_consumers import ORIGIN, fresh_thread, session_cookie

from .live_factories import score_make


def _staff():
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user("analyst", password="pw", is_staff=True)


def _socket(*headers, after: int | None = None) -> WebsocketCommunicator:
    path = "/ws/fraud/flags/" if after is None else f"/ws/fraud/flags/?after={after}"
    return WebsocketCommunicator(application, path, headers=list(headers))


async def _ids(socket) -> list[int]:
    message = await socket.receive_json_from(timeout=5)
    assert message["type"] == "fraud.flags"
    return [flag["id"] for flag in message["flags"]]


create = database_sync_to_async(score_make)


class RecordingLayer:
    def __init__(self):
        self.sent: list[tuple[str, dict]] = []

    async def group_send(self, group: str, message: dict) -> None:
        self.sent.append((group, message))


@pytest.fixture
def layer(monkeypatch) -> RecordingLayer:
    recording = RecordingLayer()
    monkeypatch.setattr(live, "get_channel_layer", lambda: recording)
    return recording


def test_the_broadcast_names_the_scores_to_the_flags_group(layer):
    live.flags_broadcast(score_ids=[7, 9])
    live.flags_broadcast(score_ids=[])

    assert layer.sent == [("fraud-flags", {"type": "fraud.flags", "score_ids": [7, 9]})]


def test_the_broadcast_works_from_a_thread_whose_event_loop_runs(layer):
    async def caller_on_a_loop():
        live.flags_broadcast(score_ids=[3])

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, caller_on_a_loop()).result()
    assert layer.sent == [("fraud-flags", {"type": "fraud.flags", "score_ids": [3]})]


def test_a_channel_layer_that_is_down_does_not_fail_the_scorer(monkeypatch, caplog):
    class DownLayer:
        async def group_send(self, group, message):
            raise ConnectionError("redis is down")

    monkeypatch.setattr(live, "get_channel_layer", DownLayer)

    live.flags_broadcast(score_ids=[1])

    assert "fraud flags: the channel layer did not take the push" in caplog.text
    assert "redis is down" in caplog.text


@pytest.mark.django_db(transaction=True)
@fresh_thread
def test_a_new_page_gets_the_flags_it_lacks_oldest_first_and_no_approvals():
    cookie = session_cookie(_staff())
    first = score_make(decision="review")
    score_make(decision="approve")
    second = score_make(decision="decline")
    third = score_make(decision="review")

    async def body():
        fresh = _socket(ORIGIN, cookie)
        assert (await fresh.connect())[0]
        assert await _ids(fresh) == [first.id, second.id, third.id]
        await fresh.disconnect()

        behind = _socket(ORIGIN, cookie, after=first.id)
        assert (await behind.connect())[0]
        message = await behind.receive_json_from(timeout=5)
        assert [flag["id"] for flag in message["flags"]] == [second.id, third.id]
        assert message["flags"][0]["html"].startswith(
            f'<tr id="flag-{second.id}" data-flag-id="{second.id}" class="flag flag-decline">'
        )
        await behind.disconnect()

        current = _socket(ORIGIN, cookie, after=third.id)
        assert (await current.connect())[0]
        assert await _ids(current) == []  # caught up: nothing it lacks
        assert await current.receive_nothing(timeout=0.3)
        await current.disconnect()

    async_to_sync(body)()


@pytest.mark.django_db(transaction=True)
@fresh_thread
def test_the_scorers_push_brings_a_new_flag_at_once(monkeypatch):
    # The database is not re-read by the socket during this test: only the push can deliver.
    monkeypatch.setattr(consumers, "TAIL_SECONDS", 3600.0)
    cookie = session_cookie(_staff())

    def score_and_push():
        flag = score_make(decision="decline")
        live.flags_broadcast(score_ids=[flag.id])
        return flag

    async def body():
        socket = _socket(ORIGIN, cookie, after=0)
        assert (await socket.connect())[0]
        assert await _ids(socket) == []
        assert await socket.receive_nothing(timeout=0.2)
        flag = await database_sync_to_async(score_and_push)()
        assert await _ids(socket) == [flag.id]
        # A second push of the same score sends nothing new.
        await database_sync_to_async(live.flags_broadcast)(score_ids=[flag.id])
        assert await socket.receive_nothing(timeout=0.3)
        await socket.disconnect()

    async_to_sync(body)()


@pytest.mark.django_db(transaction=True)
@fresh_thread
def test_a_flag_nobody_pushed_arrives_from_the_database(monkeypatch):
    monkeypatch.setattr(consumers, "TAIL_SECONDS", 0.1)
    cookie = session_cookie(_staff())

    async def body():
        socket = _socket(ORIGIN, cookie, after=0)
        assert (await socket.connect())[0]
        assert await _ids(socket) == []
        flag = await create(decision="review")
        await create(decision="approve")
        assert await _ids(socket) == [flag.id]
        assert await socket.receive_nothing(timeout=0.5)
        await socket.disconnect()

    async_to_sync(body)()


@pytest.mark.django_db(transaction=True)
@fresh_thread
def test_flags_scored_while_disconnected_arrive_after_reconnect_and_none_twice(monkeypatch):
    monkeypatch.setattr(consumers, "TAIL_SECONDS", 0.1)
    cookie = session_cookie(_staff())
    seen = score_make(decision="review")

    async def body():
        socket = _socket(ORIGIN, cookie, after=0)
        assert (await socket.connect())[0]
        assert await _ids(socket) == [seen.id]
        await socket.disconnect()
        # Scored while no page listens (and nobody pushes to a page that is not there).
        missed = [await create(decision="decline"), await create(decision="review")]
        await create(decision="approve")

        again = _socket(ORIGIN, cookie, after=seen.id)
        assert (await again.connect())[0]
        assert await _ids(again) == [flag.id for flag in missed]
        # Several database reads later, nothing was sent a second time.
        assert await again.receive_nothing(timeout=0.5)
        later = await create(decision="decline")
        assert await _ids(again) == [later.id]
        assert await again.receive_nothing(timeout=0.5)
        await again.disconnect()

    async_to_sync(body)()


@pytest.mark.django_db(transaction=True)
@fresh_thread
def test_a_flag_committed_after_a_newer_one_is_still_sent_once(monkeypatch):
    monkeypatch.setattr(consumers, "TAIL_SECONDS", 0.1)
    cookie = session_cookie(_staff())
    # Another scorer's row: its id is taken, but it only becomes a visible flag later.
    slow = score_make(decision="approve")

    async def body():
        socket = _socket(ORIGIN, cookie, after=0)
        assert (await socket.connect())[0]
        assert await _ids(socket) == []  # the approval is no flag
        fast = await create(decision="review")
        assert await _ids(socket) == [fast.id]
        await database_sync_to_async(FraudScore.objects.filter(id=slow.id).update)(
            decision="decline"
        )
        assert await _ids(socket) == [slow.id]
        assert await socket.receive_nothing(timeout=0.5)
        await socket.disconnect()

    async_to_sync(body)()


@pytest.mark.parametrize("who", ["a rider", "nobody", "an analyst"])
@pytest.mark.django_db(transaction=True)
@fresh_thread
def test_only_analysts_and_staff_may_listen(who, django_user_model):
    from fraud.services.reviews import analyst_ensure

    score_make(decision="decline")
    headers = [ORIGIN]
    if who == "a rider":
        headers.append(
            session_cookie(django_user_model.objects.create_user("rider-x", password="pw"))
        )
    elif who == "an analyst":
        headers.append(session_cookie(analyst_ensure(username="ana", password="pw")))

    async def body():
        socket = _socket(*headers, after=0)
        connected, _ = await socket.connect()
        assert connected is (who == "an analyst")
        if connected:
            assert len(await _ids(socket)) == 1
            await socket.disconnect()

    async_to_sync(body)()


@pytest.mark.django_db(transaction=True)
@fresh_thread
def test_a_socket_from_another_site_is_refused():
    cookie = session_cookie(_staff())

    async def body():
        socket = _socket((b"origin", b"https://evil.example"), cookie, after=0)
        connected, _ = await socket.connect()
        assert not connected

    async_to_sync(body)()


class HeldLayer:
    """A channel layer whose sends wait until the test releases them."""

    def __init__(self):
        self.sent: list[list[int]] = []
        self.release = threading.Event()
        self.entered = threading.Event()
        self.fail_first = False

    async def group_send(self, group: str, message: dict) -> None:
        self.entered.set()
        await asyncio.get_running_loop().run_in_executor(None, self.release.wait)
        if self.fail_first:
            self.fail_first = False
            raise ConnectionError("redis is down")
        self.sent.append(message["score_ids"])


def test_the_pusher_returns_before_the_send_and_joins_what_waits(monkeypatch):
    held = HeldLayer()
    monkeypatch.setattr(live, "get_channel_layer", lambda: held)
    pusher = live.FlagPusher()

    pusher.push([1])
    assert held.entered.wait(5)
    # The first send is held: these return at once and wait behind it, together.
    pusher.push([2])
    pusher.push([3, 4])
    pusher.push([])
    assert held.sent == []
    held.release.set()
    pusher.close()

    assert held.sent == [[1], [2, 3, 4]]
    assert pusher._thread is None


def test_the_pusher_logs_a_failed_send_and_goes_on(monkeypatch, caplog):
    held = HeldLayer()
    held.fail_first = True
    monkeypatch.setattr(live, "get_channel_layer", lambda: held)
    pusher = live.FlagPusher()

    pusher.push([1])
    assert held.entered.wait(5)
    pusher.push([2])
    held.release.set()
    pusher.close()

    assert "fraud flags: the channel layer did not take the push" in caplog.text
    assert held.sent == [[2]]


def test_the_pusher_keeps_the_newest_ids_when_too_many_wait(monkeypatch):
    held = HeldLayer()
    monkeypatch.setattr(live, "get_channel_layer", lambda: held)
    monkeypatch.setattr(live, "PUSH_WAITING_MAX", 3)
    pusher = live.FlagPusher()

    pusher.push([1])
    assert held.entered.wait(5)
    pusher.push([2, 3, 4])
    pusher.push([5])
    held.release.set()
    pusher.close()

    assert held.sent == [[1], [3, 4, 5]]
    assert pusher.dropped == 1


@fresh_thread
def test_the_pusher_reaches_a_page_of_another_process_through_redis(monkeypatch, redis_url):
    from channels_redis.core import RedisChannelLayer

    prefix = f"test-push-{uuid.uuid4().hex[:8]}"
    # The scorer's layer and the web process's: two instances on one Redis.
    monkeypatch.setattr(
        live, "get_channel_layer", lambda: RedisChannelLayer(hosts=[redis_url], prefix=prefix)
    )
    web = RedisChannelLayer(hosts=[redis_url], prefix=prefix)
    pusher = live.FlagPusher()

    async def page() -> list[int]:
        channel = await web.new_channel()
        await web.group_add(live.FLAGS_GROUP, channel)
        pusher.push([11])
        pusher.push([12, 13])
        received: list[int] = []
        while len(received) < 3:
            message = await asyncio.wait_for(web.receive(channel), 5)
            assert message["type"] == live.FLAGS_NEW
            received += message["score_ids"]
        await web.flush()
        return received

    try:
        assert asyncio.run(page()) == [11, 12, 13]
    finally:
        pusher.close()
    assert pusher._thread is None
