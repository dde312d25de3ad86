"""Lists and rules (``fraud.policy``), and what matched each score. The score's new column gets
the table's small statistics target too (0005 says why), by 0005's own function run again.
"""

from importlib import import_module

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

_statistics = import_module("fraud.migrations.0005_fraudscore_statistics")


class Migration(migrations.Migration):
    dependencies = [
        ("fraud", "0007_review_queue"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="fraudscore",
            name="matched",
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.CreateModel(
            name="Rule",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=80, unique=True)),
                ("expression", models.TextField(max_length=2000)),
                (
                    "action",
                    models.CharField(
                        choices=[("block", "Block"), ("review", "Review"), ("allow", "Allow")],
                        max_length=8,
                    ),
                ),
                (
                    "priority",
                    models.PositiveIntegerField(default=100, help_text="lowest acts first"),
                ),
                (
                    "mode",
                    models.CharField(
                        choices=[
                            ("active", "Active"),
                            ("shadow", "shadow (recorded, not acted on)"),
                            ("off", "Off"),
                        ],
                        default="shadow",
                        max_length=8,
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "author",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
        ),
        migrations.CreateModel(
            name="ListEntry",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("card", "Card"),
                            ("rider", "Rider"),
                            ("device", "Device"),
                            ("ip", "IP address"),
                            ("driver", "Driver"),
                        ],
                        max_length=8,
                    ),
                ),
                ("value", models.CharField(max_length=64)),
                (
                    "action",
                    models.CharField(
                        choices=[("block", "Block"), ("review", "Review"), ("allow", "Allow")],
                        max_length=8,
                    ),
                ),
                (
                    "stage",
                    models.CharField(
                        choices=[
                            ("before", "before the model (decides)"),
                            ("after", "after the model (adjusts)"),
                        ],
                        default="before",
                        max_length=8,
                    ),
                ),
                ("reason", models.CharField(max_length=200)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                ("expires_at", models.DateTimeField(blank=True, null=True)),
                ("removed_at", models.DateTimeField(blank=True, null=True)),
                (
                    "author",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        condition=models.Q(("removed_at__isnull", True)),
                        fields=("kind", "value"),
                        name="listed_once",
                    )
                ],
            },
        ),
        migrations.RunPython(_statistics.forwards, migrations.RunPython.noop),
    ]
