"""How the scores' table is kept on PostgreSQL (migration 0005): a small statistics sample."""

from __future__ import annotations

import pytest
from django.db import connection

from fraud.models import FraudScore
from tests.fraud.live_factories import score_make

pytestmark = pytest.mark.django_db


def test_every_score_column_has_a_statistics_target_of_10():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attname, attstattarget FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
            [FraudScore._meta.db_table],
        )
        targets = dict(cursor.fetchall())
    assert set(targets) == {f.column for f in FraudScore._meta.concrete_fields}
    assert set(targets.values()) == {10}


def test_analyze_keeps_ten_histogram_buckets_of_the_scores():
    for i in range(500):
        score_make(amount_cents=1000 + i)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {FraudScore._meta.db_table}")
        cursor.execute(
            "SELECT array_length(histogram_bounds::text::text[], 1) FROM pg_stats "
            "WHERE tablename = %s AND attname = 'amount_cents'",
            [FraudScore._meta.db_table],
        )
        (bounds,) = cursor.fetchone()
    # 500 distinct amounts: the default target (100) keeps 101 bounds.
    assert bounds == 11
