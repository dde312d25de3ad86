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


class LabelEvidence(models.Model):
    """One label event as it arrived (``ml.labels.Evidence``): a chargeback or an analyst's
    decision on a payment. Kept, never changed, so a payment's label can be resolved again as
    of any moment (``ml.selectors.labels_as_of``). ``event_id`` is the idempotency key."""

    class Source(models.TextChoices):
        CHARGEBACK = "chargeback"
        REVIEW = "review"

    event_id = models.UUIDField(unique=True)
    payment_id = models.CharField(max_length=64, db_index=True)
    source = models.CharField(max_length=16, choices=Source.choices)
    fraud = models.BooleanField()
    # The chargeback's reason code, or the review's outcome.
    detail = models.CharField(max_length=32)
    # The event's occurred_at: when the label became known, the moment it counts from.
    known_at = models.DateTimeField(db_index=True)
    recorded_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.source} on payment {self.payment_id}: {'fraud' if self.fraud else 'not'}"


class Label(models.Model):
    """A payment's label now: its evidence resolved by ``ml.labels.resolve`` (the rule is
    there), rewritten whenever new evidence for the payment arrives."""

    payment_id = models.CharField(max_length=64, unique=True)
    fraud = models.BooleanField()
    # Which evidence decided it, and when that became known.
    source = models.CharField(max_length=16, choices=LabelEvidence.Source.choices)
    known_at = models.DateTimeField(db_index=True)
    # Some evidence said the opposite (an analyst's "legitimate", then a fraud chargeback).
    contradicted = models.BooleanField(default=False)
    evidence = models.PositiveIntegerField()
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"payment {self.payment_id}: {'fraud' if self.fraud else 'legitimate'}"
