"""Two checkpoints: a score and a deployment say which one (authorization or capture), and
each checkpoint has its own champion. The new score column gets the table's small statistics
target too, by 0005's function run again (0006 says why)."""

from importlib import import_module

from django.db import migrations, models

_statistics = import_module("fraud.migrations.0005_fraudscore_statistics")


class Migration(migrations.Migration):
    dependencies = [
        ("fraud", "0012_model_time"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="deployment",
            name="one_champion",
        ),
        migrations.AddField(
            model_name="deployment",
            name="checkpoint",
            field=models.CharField(default="authorization", max_length=16),
        ),
        migrations.AddField(
            model_name="fraudscore",
            name="checkpoint",
            field=models.CharField(default="authorization", max_length=16),
        ),
        migrations.AddConstraint(
            model_name="deployment",
            constraint=models.UniqueConstraint(
                condition=models.Q(("role", "champion")),
                fields=("checkpoint",),
                name="one_champion_per_checkpoint",
            ),
        ),
        migrations.RunPython(_statistics.forwards, migrations.RunPython.noop),
    ]
