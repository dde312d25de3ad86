"""The model registry's table: one row per registered LightGBM model version, with its metrics
and lineage. The model itself is a text file under ``ML_MODELS_DIR`` (written by
``ml.services.model_register``, read by ``ml.registry.model_load``)."""

from __future__ import annotations

from django.db import models


class ModelVersion(models.Model):
    """A trained model: where its text file is, what it reads, how good it was, where it came
    from. Immutable once registered; ``sha256`` (of the file's bytes) is the idempotency key of
    registration."""

    class Source(models.TextChoices):
        BOOTSTRAP = "bootstrap: simulator history"
        LOGS = "logs+labels"

    # fraud-lgbm-<UTC yyyymmddThhmmssZ>-<first 8 hex digits of sha256>
    version = models.CharField(max_length=64, unique=True)
    artifact_path = models.CharField(max_length=500)
    sha256 = models.CharField(max_length=64, unique=True)
    feature_service = models.CharField(max_length=64)
    # The model's input columns, in the order the booster expects them.
    feature_names = models.JSONField(default=list)
    # LightGBM parameters and boosting rounds the model was trained with.
    params = models.JSONField(default=dict)
    # Time-based holdout: auc_roc, auc_pr, precision/recall at the thresholds, row counts,
    # positive rates (``ml.evaluate``).
    metrics = models.JSONField(default=dict)
    # Lineage: the event-time window of the rows, how many trained the model, the code that
    # trained it and the model it was warm-started from.
    data_start = models.DateTimeField()
    data_end = models.DateTimeField()
    training_rows = models.PositiveIntegerField()
    code_version = models.CharField(max_length=64)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    source = models.CharField(max_length=32, choices=Source.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["-created_at"], name="modelversion_latest")]

    def __str__(self) -> str:
        return self.version
