"""Bulk inserts on PostgreSQL for the writers of many rows at once: the outbox (``COPY``) and
the scorer (one ``INSERT`` of a micro-batch's scores, skipping those recorded already).

Django's ``bulk_create`` on PostgreSQL sends one ``INSERT ... SELECT * FROM UNNEST(...)`` whose
arrays psycopg quotes value by value in Python (client-side binding), most of a scorer's time
for a score with its kilobyte of served features (docs/performance.md). ``COPY`` takes the same
rows at a fraction of that, and so does one JSON parameter (one string to quote). Values are
prepared by the fields as ``bulk_create`` prepares them (``pre_save``, then the field's
preparation), so defaults, ``auto_now_add`` and JSON columns behave the same. On any other
database ``copy_insert`` falls back to ``bulk_create``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from django.db import connection, models


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


def insert_new(
    model: type[models.Model],
    objs: Sequence[models.Model],
    *,
    unique: str,
    companion: type[models.Model] | None = None,
    json_text: Mapping[str, Sequence[str]] | None = None,
) -> dict[Any, int]:
    """Insert those of ``objs`` whose ``unique`` field (a single-column unique constraint)
    holds a value the table does not have yet; return value -> id of the rows inserted.
    PostgreSQL only (``copy_available``).

    One statement, so one round trip and atomic without a transaction of its own: the rows go
    as one JSON parameter (``json_populate_recordset`` over the table's row type) into
    ``INSERT ... ON CONFLICT DO NOTHING RETURNING``, so a concurrent writer of the same value
    makes this one skip it, never fail. ``companion``: a model whose primary key is a one-to-one
    to ``model`` gets a row for each row inserted, in the same statement (its other columns
    take their database defaults). For a micro-batch of scores this is faster, in wall time
    and in Python time, than ``COPY`` into a temporary table and an ``INSERT`` from it in a
    transaction (seven round trips) (docs/performance.md).

    Values are prepared by the fields (``pre_save``, ``get_prep_value``) and written as JSON by
    orjson (far faster than the json module: docs/performance.md): strings for what JSON lacks
    (UUIDs, ISO 8601 timestamps with their offset, decimals), which the column types read
    back; a JSON column's value is reproduced as it is. ``json_text``: JSON fields whose values
    are given already encoded, one text per object in order (a caller that needs the text
    anyway encodes once), in place of the objects' values."""
    fields = _fields(model)
    given = {model._meta.get_field(name).column for name in json_text or {}}
    rows = [
        {
            f.column: f.get_prep_value(f.pre_save(obj, add=True))
            for f in fields
            if f.column not in given
        }
        for obj in objs
    ]
    return insert_rows(model, rows, unique=unique, companion=companion, json_text=json_text)


def insert_rows(
    model: type[models.Model],
    rows: Sequence[Mapping[str, Any]],
    *,
    unique: str,
    companion: type[models.Model] | None = None,
    json_text: Mapping[str, Sequence[str]] | None = None,
) -> dict[Any, int]:
    """``insert_new`` of rows given as column -> value, each value as its field would prepare
    it (``get_prep_value``: a datetime, a UUID, a list for a JSON column...): for a writer of
    many plain rows, which spares it the cost of a model instance and its fields' preparation a
    row (docs/performance.md).
    Every column but the primary key and those of ``json_text`` is given, defaults included:
    ``json_populate_recordset`` makes a missing one NULL (the first row's columns are
    checked)."""
    if not copy_available():
        raise RuntimeError("insert_new and insert_rows need PostgreSQL")
    if not rows:
        return {}
    fields = _fields(model)
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    columns = _names(fields)
    key = quote(model._meta.get_field(unique).column)
    pk = quote(model._meta.pk.column)
    given = {model._meta.get_field(name).column: texts for name, texts in (json_text or {}).items()}
    expected = {f.column for f in fields} - set(given)
    if set(rows[0]) != expected:
        raise ValueError(
            f"{model.__name__} rows need exactly the columns {sorted(expected)}, "
            f"not {sorted(rows[0])}"
        )
    encoded = [orjson.dumps(row, default=str).decode() for row in rows]
    # Each given text goes in before its row's closing brace (a row of no column has none to
    # separate it from).
    for column, texts in given.items():
        name = json.dumps(column)
        encoded = [
            f"{row[:-1]}{', ' if row != '{}' else ''}{name}: {text}}}"
            for row, text in zip(encoded, texts, strict=True)
        ]
    rows_json = "[" + ", ".join(encoded) + "]"
    insert = (
        f"INSERT INTO {table} ({columns}) SELECT {columns} "  # noqa: S608
        f"FROM json_populate_recordset(NULL::{table}, %s::json) "
        f"ON CONFLICT ({key}) DO NOTHING RETURNING {key}, {pk}"
    )
    if companion is None:
        sql = insert
    else:
        other = quote(companion._meta.db_table)
        link = quote(companion._meta.pk.column)
        sql = (
            f"WITH inserted AS ({insert}), "  # noqa: S608
            f"paired AS (INSERT INTO {other} ({link}) SELECT {pk} FROM inserted) "
            f"SELECT {key}, {pk} FROM inserted"
        )
    with connection.cursor() as cursor:
        cursor.execute(sql, [rows_json])
        return dict(cursor.fetchall())


def delete_ids(model: type[models.Model], ids: Sequence[int]) -> None:
    """Delete the rows of ``model`` (an integer primary key) whose keys are ``ids``; signals and
    cascades are not run (``model`` has none).

    On PostgreSQL the keys go as one array literal, a single string to quote, several times
    faster than Django's ``IN`` list of quoted parameters (docs/performance.md)."""
    if not ids:
        return
    if not copy_available():
        model.objects.filter(pk__in=list(ids)).delete()
        return
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    pk = quote(model._meta.pk.column)
    keys = "{" + ",".join(str(int(i)) for i in ids) + "}"
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE {pk} = ANY(%s::bigint[])", [keys])  # noqa: S608
