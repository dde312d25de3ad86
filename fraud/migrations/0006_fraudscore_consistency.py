"""Whether a score's features were exact or stale (``features.stream_serving``), and by how much.

The new columns get the table's small statistics target too (0005 says why), by 0005's own
function run again: it sets every column's, these included.
"""

from importlib import import_module

from django.db import migrations, models

_statistics = import_module("fraud.migrations.0005_fraudscore_statistics")


class Migration(migrations.Migration):
    dependencies = [
        ("fraud", "0005_fraudscore_statistics"),
    ]

    operations = [
        migrations.AddField(
            model_name="fraudscore",
            name="consistency",
            field=models.CharField(
                blank=True,
                choices=[("exact", "exact"), ("stale", "stale")],
                default="",
                max_length=8,
            ),
        ),
        migrations.AddField(
            model_name="fraudscore",
            name="consistency_lag_ms",
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.RunPython(_statistics.forwards, migrations.RunPython.noop),
    ]
