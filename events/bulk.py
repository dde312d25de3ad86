"""Bulk inserts through PostgreSQL's ``COPY``, for the consumers that record a micro-batch in
one transaction (the scorer: a score and an outbox event per payment).

Django's ``bulk_create`` on PostgreSQL sends one ``INSERT ... SELECT * FROM UNNEST(...)`` whose
arrays psycopg quotes value by value in Python (client-side binding): measured at ~150 µs a
row for a score with its kilobyte of served features, most of a scorer's time. ``COPY`` takes
the same rows at a few µs each. Values are prepared by the fields exactly as ``bulk_create``
prepares them (``pre_save``, ``get_db_prep_save``), so defaults, ``auto_now_add`` and JSON
columns behave the same. On any other database both functions fall back to ``bulk_create``.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

from django.db import connection, models, transaction

# The stage tables that exist, by database connection (a temporary table lives as long as the
# session that created it; a new connection starts with none).
_staged: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


def copy_available() -> bool:
    """Whether the default database takes ``COPY`` (PostgreSQL)."""
    return connection.vendor == "postgresql"


def _fields(model: type[models.Model]) -> list[models.Field]:
    return [f for f in model._meta.concrete_fields if not f.primary_key]


def _rows(objs: Sequence[models.Model], fields: list[models.Field]) -> list[tuple[Any, ...]]:
    return [
        tuple(f.get_db_prep_save(f.pre_save(obj, add=True), connection) for f in fields)
        for obj in objs
    ]


def _names(fields: list[models.Field]) -> str:
    quote = connection.ops.quote_name
    return ", ".join(quote(f.column) for f in fields)


def copy_insert(model: type[models.Model], objs: Sequence[models.Model]) -> None:
    """Insert ``objs``, in order (ids ascend with it), as ``bulk_create`` would; their ``pk``
    is not set. Conflicts raise, as they do there."""
    if not objs:
        return
    if not copy_available():
        model.objects.bulk_create(objs)
        return
    fields = _fields(model)
    table = connection.ops.quote_name(model._meta.db_table)
    with (
        connection.cursor() as cursor,
        cursor.copy(f"COPY {table} ({_names(fields)}) FROM STDIN") as copy,
    ):
        for row in _rows(objs, fields):
            copy.write_row(row)


def copy_insert_new(
    model: type[models.Model],
    objs: Sequence[models.Model],
    *,
    unique: str,
    companion: type[models.Model] | None = None,
) -> dict[Any, int]:
    """Insert those of ``objs`` whose ``unique`` field (a single-column unique constraint)
    holds a value the table does not have yet; return value -> id of the rows inserted.
    PostgreSQL only (``copy_available``): ``COPY`` into a temporary table of the session, then
    ``INSERT ... ON CONFLICT DO NOTHING RETURNING``, so a concurrent writer of the same value
    makes this one skip it, never fail. ``companion``: a model whose primary key is a one-to-one
    to ``model`` gets a row for each row inserted, in the same statement (its other columns
    take their database defaults)."""
    if not copy_available():
        raise RuntimeError("copy_insert_new needs PostgreSQL")
    if not objs:
        return {}
    fields = _fields(model)
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    stage = quote(f"stage_{model._meta.db_table}")
    columns = _names(fields)
    key = quote(model._meta.get_field(unique).column)
    with connection.cursor() as cursor:
        session = connection.connection
        if stage not in _staged.get(session, ()):
            cursor.execute(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS "  # noqa: S608
                f"AS SELECT {columns} FROM {table} WITH NO DATA"
            )
            # Known to exist once committed: a rolled-back creation leaves no table behind.
            transaction.on_commit(lambda: _staged.setdefault(session, set()).add(stage))
        with cursor.copy(f"COPY {stage} ({columns}) FROM STDIN") as copy:
            for row in _rows(objs, fields):
                copy.write_row(row)
        # One round trip: the stage is emptied (for callers that nest, before their commit
        # does it) as its rows move to the table.
        pk = quote(model._meta.pk.column)
        insert = (
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM moved "  # noqa: S608
            f"ON CONFLICT ({key}) DO NOTHING RETURNING {key}, {pk}"
        )
        if companion is None:
            sql = f"WITH moved AS (DELETE FROM {stage} RETURNING {columns}) {insert}"  # noqa: S608
        else:
            other = quote(companion._meta.db_table)
            link = quote(companion._meta.pk.column)
            sql = (
                f"WITH moved AS (DELETE FROM {stage} RETURNING {columns}), "  # noqa: S608
                f"inserted AS ({insert}), "
                f"paired AS (INSERT INTO {other} ({link}) SELECT {pk} FROM inserted) "
                f"SELECT {key}, {pk} FROM inserted"
            )
        cursor.execute(sql)
        return dict(cursor.fetchall())
