"""Bulk inserts through COPY: the same rows as ``bulk_create``, conflicts skipped not failed."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection, transaction

from events.bulk import copy_available, copy_insert, copy_insert_new
from events.models import OutboxEvent
from tests.events.factories import trip_requested

pytestmark = pytest.mark.django_db


def _row(event_id: uuid.UUID | None = None, **overrides) -> OutboxEvent:
    event = trip_requested()
    fields = {
        "event_id": event_id or event.event_id,
        "topic": event.topic,
        "key": event.key(),
        "payload": event.encode().decode(),
        "occurred_at": event.occurred_at,
        **overrides,
    }
    return OutboxEvent(**fields)


def _stored(ids) -> list[tuple]:
    return list(
        OutboxEvent.objects.filter(event_id__in=ids)
        .order_by("id")
        .values_list("event_id", "topic", "key", "payload", "occurred_at", "attempts", "last_error")
    )


def test_copy_insert_stores_what_bulk_create_stores_in_order():
    assert copy_available(), "the test database is PostgreSQL"
    copied = [_row(payload='{"x": "tab\\t, newline\\n, quote \\" and é"}') for _ in range(3)]
    created = [
        _row(topic=r.topic, key=r.key, payload=r.payload, occurred_at=r.occurred_at) for r in copied
    ]
    with transaction.atomic():
        copy_insert(OutboxEvent, copied)
    OutboxEvent.objects.bulk_create(created)

    by_copy = _stored([r.event_id for r in copied])
    by_orm = _stored([r.event_id for r in created])
    assert [r[0] for r in by_copy] == [r.event_id for r in copied]
    assert [r[1:] for r in by_copy] == [r[1:] for r in by_orm]
    stamps = OutboxEvent.objects.filter(event_id__in=[r.event_id for r in copied])
    assert all(s.created_at is not None and s.published_at is None for s in stamps)


def test_copy_insert_new_inserts_the_new_rows_and_returns_their_ids():
    existing = _row()
    OutboxEvent.objects.bulk_create([existing])
    kept = OutboxEvent.objects.get(event_id=existing.event_id)
    fresh = [_row(), _row()]

    with transaction.atomic():
        inserted = copy_insert_new(
            OutboxEvent, [_row(existing.event_id, key="other"), *fresh], unique="event_id"
        )
        # Twice in one transaction: the stage starts empty again.
        again = copy_insert_new(OutboxEvent, [_row()], unique="event_id")

    assert set(inserted) == {r.event_id for r in fresh}
    assert {OutboxEvent.objects.get(id=i).event_id for i in inserted.values()} == set(inserted)
    assert len(again) == 1
    assert OutboxEvent.objects.get(event_id=existing.event_id) == kept
    assert OutboxEvent.objects.get(event_id=existing.event_id).key == kept.key
    with connection.cursor() as cursor:
        cursor.execute('SELECT count(*) FROM "stage_events_outboxevent"')
        assert cursor.fetchone() == (0,)


@pytest.mark.django_db(transaction=True)
def test_the_stage_is_created_once_per_connection_and_again_after_a_reconnect():
    from django.test.utils import CaptureQueriesContext

    def insert() -> list[str]:
        with CaptureQueriesContext(connection) as queries, transaction.atomic():
            assert len(copy_insert_new(OutboxEvent, [_row()], unique="event_id")) == 1
        return [q["sql"] for q in queries.captured_queries]

    def creates(sql: list[str]) -> int:
        return sum("CREATE TEMPORARY TABLE" in s for s in sql)

    def rolled_back() -> None:
        with transaction.atomic():
            copy_insert_new(OutboxEvent, [_row()], unique="event_id")
            raise RuntimeError("roll back")

    # A creation rolled back leaves no table behind: the next call creates it again.
    with pytest.raises(RuntimeError):
        rolled_back()
    assert creates(insert()) == 1
    assert creates(insert()) == 0
    connection.close()
    assert creates(insert()) == 1
    assert OutboxEvent.objects.count() == 3
