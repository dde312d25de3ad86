"""Bulk inserts (COPY, one JSON statement): the same rows as ``bulk_create``, conflicts skipped
not failed."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.db import connection, transaction

from events.bulk import copy_available, copy_insert, delete_ids, insert_new, insert_rows
from events.models import OutboxEvent
from fraud.models import FraudScore, UnloggedScore
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


def test_insert_new_inserts_the_new_rows_and_returns_their_ids():
    existing = _row()
    OutboxEvent.objects.bulk_create([existing])
    kept = OutboxEvent.objects.get(event_id=existing.event_id)
    fresh = [_row(), _row()]

    inserted = insert_new(
        OutboxEvent, [_row(existing.event_id, key="other"), *fresh], unique="event_id"
    )

    assert set(inserted) == {r.event_id for r in fresh}
    assert {OutboxEvent.objects.get(id=i).event_id for i in inserted.values()} == set(inserted)
    assert OutboxEvent.objects.get(event_id=existing.event_id) == kept
    assert OutboxEvent.objects.get(event_id=existing.event_id).key == kept.key


def _score(**overrides) -> FraudScore:
    fields = {
        "event_id": uuid.uuid4(),
        "payment_id": "pay-1",
        "card_id": "card-é",
        "rider_id": "rider\ttab",
        "amount_cents": 2**40,
        "currency": "EUR",
        "occurred_at": datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=5))),
        "scored_at": datetime(2026, 3, 1, 7, 0, 0, 1, tzinfo=UTC),
        "score": 0.1 + 0.2,
        "decision": "review",
        "model_version": "m1",
        "role": "champion",
        "reasons": [{"feature": "f", "text": 'quote " and \\ backslash'}],
        "latency_ms": 1e-300,
        "features": {"values": {"a": 0.30000000000000004, "b": None, "c": [1, "x"]}},
        **overrides,
    }
    return FraudScore(**fields)


def test_insert_new_stores_what_bulk_create_stores_with_its_companion_in_one_statement():
    from django.test.utils import CaptureQueriesContext

    by_insert = [_score(), _score(degraded=True, batch_id=uuid.uuid4(), pickup_zone="z")]
    by_orm = [_score(**{f: getattr(s, f) for f in ("degraded", "batch_id", "pickup_zone")})
              for s in by_insert]  # fmt: skip
    FraudScore.objects.bulk_create(by_orm)

    with CaptureQueriesContext(connection) as queries:
        inserted = insert_new(FraudScore, by_insert, unique="event_id", companion=UnloggedScore)

    assert len(queries.captured_queries) == 1
    assert set(inserted) == {s.event_id for s in by_insert}
    columns = [f.name for f in FraudScore._meta.concrete_fields if f.name not in ("id", "event_id")]

    def stored(scores: list[FraudScore]) -> list[dict]:
        ids = [s.event_id for s in scores]
        return list(FraudScore.objects.filter(event_id__in=ids).order_by("id").values(*columns))

    assert stored(by_insert) == stored(by_orm)
    assert stored(by_insert)[0]["score"] == 0.1 + 0.2
    assert set(UnloggedScore.objects.values_list("score_id", flat=True)) == set(inserted.values())
    # Again: nothing new, no companion row either.
    assert insert_new(FraudScore, by_insert, unique="event_id", companion=UnloggedScore) == {}
    assert UnloggedScore.objects.count() == 2


def test_insert_rows_stores_what_insert_new_stores_and_wants_every_column():
    columns = [f.name for f in FraudScore._meta.concrete_fields if f.name not in ("id", "event_id")]
    by_instance = _score(degraded=True, degraded_features=["x"], batch_id=uuid.uuid4())
    row = {
        f.column: getattr(by_instance, f.attname)
        for f in FraudScore._meta.concrete_fields
        if f.name not in ("id", "features")
    }
    row["event_id"] = uuid.uuid4()
    text = json.dumps(by_instance.features)
    insert_new(FraudScore, [by_instance], unique="event_id", json_text={"features": [text]})

    inserted = insert_rows(
        FraudScore, [row], unique="event_id", companion=UnloggedScore,
        json_text={"features": [text]},
    )  # fmt: skip

    assert list(inserted) == [row["event_id"]]
    stored = FraudScore.objects.values(*columns)
    assert stored.get(event_id=row["event_id"]) == stored.get(event_id=by_instance.event_id)
    assert UnloggedScore.objects.get().score_id == inserted[row["event_id"]]
    # A column left out would be NULL, not its default: refused before anything is sent.
    del row["rescored_at"]
    with pytest.raises(ValueError, match="rescored_at"):
        insert_rows(FraudScore, [row], unique="event_id", json_text={"features": [text]})


def test_delete_ids_deletes_those_rows_and_no_other():
    scores = [_score() for _ in range(4)]
    inserted = insert_new(FraudScore, scores, unique="event_id", companion=UnloggedScore)
    ids = sorted(inserted.values())

    delete_ids(UnloggedScore, ids[1:3])
    delete_ids(UnloggedScore, [])

    assert sorted(UnloggedScore.objects.values_list("score_id", flat=True)) == [ids[0], ids[3]]
    assert FraudScore.objects.filter(id__in=ids).count() == 4


def test_insert_new_takes_a_json_column_already_encoded():
    features = {"values": [0.1 + 0.2, None, 2**53 + 1], "text": 'é "q" \\ \t'}
    by_text = _score(features={"ignored": True})
    by_orm = _score(features=features)
    FraudScore.objects.bulk_create([by_orm])

    insert_new(
        FraudScore, [by_text], unique="event_id", json_text={"features": [json.dumps(features)]}
    )

    stored = dict(FraudScore.objects.values_list("event_id", "features"))
    assert stored[by_text.event_id] == stored[by_orm.event_id] == features


def test_the_served_vector_column_is_json_text_and_reads_back_as_written():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT data_type FROM information_schema.columns "
            "WHERE table_name = %s AND column_name = 'features'",
            [FraudScore._meta.db_table],
        )
        assert cursor.fetchone() == ("json",)
    # Key order and float digits as written (jsonb would sort the keys by length).
    features = {"zeta": 0.1 + 0.2, "a": [1e-300, None, 2**53 + 1], "mid": {"y": "é", "x": True}}
    saved = _score(features=features)
    saved.save()
    inserted = _score()
    insert_new(
        FraudScore, [inserted], unique="event_id", json_text={"features": [json.dumps(features)]}
    )

    for event_id in (saved.event_id, inserted.event_id):
        back = FraudScore.objects.get(event_id=event_id).features
        assert back == features
        assert list(back) == ["zeta", "a", "mid"]
        assert FraudScore.objects.values_list("features", flat=True).get(event_id=event_id) == back
    # Still JSON to PostgreSQL's own operators.
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT features -> 'mid' ->> 'y' FROM {FraudScore._meta.db_table} "  # noqa: S608
            "WHERE event_id = %s",
            [inserted.event_id],
        )
        assert cursor.fetchone() == ("é",)
