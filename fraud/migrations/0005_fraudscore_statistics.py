"""A small statistics sample for ``fraud_fraudscore`` on PostgreSQL.

One row per payment (~1.3 KB, with the served vector), appended at the payment rate and read
only through its indexes. ANALYZE samples 300 rows per unit of the largest statistics target of
the table's columns: 30,000 rows at the default target of 100, which took 0.3 s of CPU on
100,000 rows (0.8 s on the two shared cores of the scoring benchmark, where autovacuum ran it
once a minute while the table grew and the verdicts waited those 0.8 s). At a target of 10 it
samples 3,000 rows in 20 ms. Ten histogram buckets and ten most common values per column are
enough for the plans of this table's queries (an index each), and a growing table's newest
values are read from its indexes by the planner anyway.
"""

from django.db import migrations

TARGET = 10


def _set_statistics(apps, schema_editor, target: int) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    model = apps.get_model("fraud", "FraudScore")
    quote = schema_editor.quote_name
    columns = ", ".join(
        f"ALTER COLUMN {quote(field.column)} SET STATISTICS {target}"
        for field in model._meta.concrete_fields
    )
    schema_editor.execute(f"ALTER TABLE {quote(model._meta.db_table)} {columns}")


def forwards(apps, schema_editor) -> None:
    _set_statistics(apps, schema_editor, TARGET)


def backwards(apps, schema_editor) -> None:
    # -1: back to default_statistics_target.
    _set_statistics(apps, schema_editor, -1)


class Migration(migrations.Migration):
    dependencies = [
        ("fraud", "0004_features_json_text"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
