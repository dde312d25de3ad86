"""Scores left to log move from ``FraudScore.logged`` (a flag rewritten on every score) to
``UnloggedScore`` rows (inserted with a score, deleted once it is logged)."""

import django.db.models.deletion
import django.db.models.functions
from django.db import migrations, models


def unlogged_rows(apps, schema_editor):
    FraudScore = apps.get_model("fraud", "FraudScore")
    UnloggedScore = apps.get_model("fraud", "UnloggedScore")
    ids = FraudScore.objects.filter(logged=False).values_list("id", flat=True).iterator()
    UnloggedScore.objects.bulk_create((UnloggedScore(score_id=i) for i in ids), batch_size=5000)


def unlogged_flags(apps, schema_editor):
    FraudScore = apps.get_model("fraud", "FraudScore")
    UnloggedScore = apps.get_model("fraud", "UnloggedScore")
    FraudScore.objects.exclude(id__in=UnloggedScore.objects.values("score_id")).update(logged=True)


class Migration(migrations.Migration):
    dependencies = [
        ("fraud", "0002_flagged_index"),
    ]

    operations = [
        migrations.CreateModel(
            name="UnloggedScore",
            fields=[
                (
                    "score",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="unlogged",
                        serialize=False,
                        to="fraud.fraudscore",
                    ),
                ),
                ("created_at", models.DateTimeField(db_default=django.db.models.functions.Now())),
            ],
        ),
        migrations.RunPython(unlogged_rows, unlogged_flags),
        migrations.RemoveIndex(
            model_name="fraudscore",
            name="fraudscore_unlogged",
        ),
        migrations.RemoveField(
            model_name="fraudscore",
            name="logged",
        ),
    ]
