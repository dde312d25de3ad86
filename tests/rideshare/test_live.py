"""The push of trip changes: after commit only, from any calling thread."""

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import transaction

from rideshare import live


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


def test_the_broadcast_names_the_trip_and_its_status(layer):
    live.trip_changed_broadcast(trip_id="t-1", status="picked_up")
    assert layer.sent == [
        ("trip.t-1", {"type": "trip.changed", "trip_id": "t-1", "status": "picked_up"})
    ]


def test_the_broadcast_works_from_a_thread_whose_event_loop_runs(layer):
    async def caller_on_a_loop():
        # A synchronous call, as a notebook or Playwright's sync API makes it.
        live.trip_changed_broadcast(trip_id="t-2", status="completed")

    # On a thread of its own: after the browser tests the main thread has a loop marked running.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, caller_on_a_loop()).result()
    assert layer.sent == [
        ("trip.t-2", {"type": "trip.changed", "trip_id": "t-2", "status": "completed"})
    ]


@pytest.mark.django_db(transaction=True)
def test_the_push_waits_for_the_commit_and_is_dropped_on_rollback(layer):
    with transaction.atomic():
        live.trip_changed_on_commit(trip_id="t-3", status="driver_assigned")
        assert layer.sent == []
    assert [group for group, _ in layer.sent] == ["trip.t-3"]

    def change_then_fail():
        with transaction.atomic():
            live.trip_changed_on_commit(trip_id="t-4", status="cancelled")
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        change_then_fail()
    assert [group for group, _ in layer.sent] == ["trip.t-3"]


@pytest.mark.django_db(transaction=True)
def test_a_channel_layer_that_is_down_does_not_fail_the_committed_change(monkeypatch, caplog):
    class DownLayer:
        async def group_send(self, group, message):
            raise ConnectionError("redis is down")

    monkeypatch.setattr(live, "get_channel_layer", DownLayer)
    with transaction.atomic():
        live.trip_changed_on_commit(trip_id="t-5", status="completed")
    assert "redis is down" in caplog.text
