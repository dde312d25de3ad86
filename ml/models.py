"""The model registry's table: one row per registered LightGBM model version, with its metrics
and lineage. The model itself is a text file under ``ML_MODELS_DIR`` (written by
``ml.services.model_register``, read by ``ml.registry.model_load``)."""

from __future__ import annotations

from django.db import models

from ml.labels import Evidence


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
    # ``full``: trained from scratch; ``fine_tune``: a replica of ``parent`` trained further
    # on the newest rows (``ml.training``: a chain of fine-tunes is bounded).
    kind = models.CharField(max_length=16, default="full")
    # The offline gates (``ml.gates``): a rejected model never serves in any role.
    status = models.CharField(
        max_length=16,
        choices=[("candidate", "candidate"), ("approved", "approved"), ("rejected", "rejected")],
        default="candidate",
    )
    # [{gate, passed, figures, reason}], in the order they ran.
    gates = models.JSONField(default=list, blank=True)
    # The thresholds the backtest matched to the champion's alert volume (``ml.gates``): a
    # deployment of this model uses them unless told others. None: gated without a champion.
    review_threshold = models.FloatField(null=True, blank=True)
    decline_threshold = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["-created_at"], name="modelversion_latest")]
        permissions = [("manage_models", "Deploy, compare and retire models (the ML console)")]

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

    def as_evidence(self) -> Evidence:
        """Return this row as the label rule reads it (``ml.labels.resolve``)."""
        return Evidence(
            source=self.source,
            fraud=self.fraud,
            detail=self.detail,
            known_at=self.known_at,
            event_id=str(self.event_id),
        )


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


class TrainingRun(models.Model):
    """One request to train a model (``ml.services.training_request``), run by the Celery task
    ``ml.tasks.train`` on the ``training`` queue. ``request_key`` is its idempotency key: the
    task redelivered after its worker died resumes this row and registers one model version.
    ``stage`` and ``percent`` are its progress, readable while it runs."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        REGISTERED = "registered"
        FAILED = "failed"

    class Kind(models.TextChoices):
        FULL = "full"
        FINE_TUNE = "fine_tune"

    request_key = models.CharField(max_length=128, unique=True)
    # What was asked for; ``kind`` is what ran (a fine-tune past its chain's bounds runs full).
    requested_kind = models.CharField(max_length=16, choices=Kind.choices)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # Why it runs: ``manual``, or the trigger that fired (``ml.triggers``).
    reason = models.CharField(max_length=32, default="manual")
    feature_service = models.CharField(max_length=64)
    # The event time the training set is cut at (labels known by then, rows served by then).
    as_of = models.DateTimeField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    stage = models.CharField(max_length=64, default="queued")
    percent = models.PositiveSmallIntegerField(default=0)
    attempts = models.PositiveSmallIntegerField(default=0)
    # The training set's profile (rows, class balance, label sources, null shares) and why
    # the kind changed, if it did.
    dataset = models.JSONField(default=dict)
    note = models.TextField(blank=True)
    error = models.TextField(blank=True)
    parent = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    model = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="runs"
    )
    cpu_seconds = models.FloatField(null=True, blank=True)
    requested_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["-requested_at"], name="trainingrun_latest")]

    def __str__(self) -> str:
        return f"{self.kind} training {self.request_key}: {self.status}"


class TriggerFiring(models.Model):
    """A trigger that fired (``ml.triggers``): which, at what event time, its figures, why,
    and the training it started (none when another one was running or started by an earlier
    trigger of the same check)."""

    trigger = models.CharField(max_length=16)
    # The stream's clock when it fired: the event time of the newest payment scored.
    event_time = models.DateTimeField()
    figures = models.JSONField(default=dict)
    reason = models.TextField()
    kind = models.CharField(max_length=16, choices=TrainingRun.Kind.choices)
    run = models.ForeignKey(
        TrainingRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="firings"
    )
    # Whether ``run`` was started by this firing (not one already running).
    started = models.BooleanField(default=False)
    fired_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["trigger", "-event_time"], name="firing_latest")]

    def __str__(self) -> str:
        return f"{self.trigger} at {self.event_time:%Y-%m-%d %H:%M}: {self.reason}"


class Experiment(models.Model):
    """An online comparison of deployed models on live traffic: a Thompson-sampling bandit
    (``ml.bandit``) whose arms are the champion and candidates deployed as canaries, each
    deciding for its share of cards. ``ml.services.bandit_update`` reads the arms' decisions
    and rewards from the scores and labels since ``after_score_id``, sets the shares and, once
    one arm is the best with probability ``confidence``, promotes it. At most one runs."""

    class Status(models.TextChoices):
        RUNNING = "running"
        DECIDED = "decided"
        STOPPED = "stopped"

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    # The champion when it started: the arm whose share is what the others leave.
    champion = models.CharField(max_length=64)
    # Scores after this one count (the newest when it started).
    after_score_id = models.BigIntegerField()
    floor = models.FloatField()
    confidence = models.FloatField()
    min_samples = models.PositiveIntegerField()
    started_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # How many updates ran: with the experiment's id, the seed of each update's draws.
    updates = models.PositiveIntegerField(default=0)
    winner = models.CharField(max_length=64, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["status"], condition=models.Q(status="running"), name="one_running"
            )
        ]

    def __str__(self) -> str:
        return f"bandit {self.pk} ({self.status})"


class ExperimentArm(models.Model):
    """One arm of an experiment: its evidence at the last update (``ml.bandit.Arm``), its
    chance of being the best and its share of the traffic."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="arms")
    model_version = models.CharField(max_length=64)
    flagged = models.PositiveIntegerField(default=0)
    approved = models.PositiveIntegerField(default=0)
    flag_right = models.PositiveIntegerField(default=0)
    flag_wrong = models.PositiveIntegerField(default=0)
    approval_right = models.PositiveIntegerField(default=0)
    approval_wrong = models.PositiveIntegerField(default=0)
    chance_best = models.FloatField(default=0.0)
    share = models.FloatField(default=0.0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["experiment", "model_version"], name="arm_once")
        ]

    def __str__(self) -> str:
        return f"{self.model_version} in {self.experiment}"


class RoleChange(models.Model):
    """A model version's part in the scorer changed (``ml.services.model_promote``): its role
    history, with who or what changed it and why (a person, a bandit's pick, a canary's
    guardrail)."""

    model_version = models.CharField(max_length=64, db_index=True)
    previous_role = models.CharField(max_length=16, blank=True)
    role = models.CharField(max_length=16)
    canary_share = models.FloatField(default=0.0)
    reason = models.TextField()
    # The figures the change was decided on (a guardrail's, a bandit's), if any.
    figures = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField(auto_now_add=True)
    # The newest score when it changed: the model's decisions in its new part come after it.
    after_score_id = models.BigIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["-at"], name="rolechange_latest")]

    def __str__(self) -> str:
        return f"{self.model_version}: {self.previous_role or 'new'} -> {self.role}"


class TriggerConfig(models.Model):
    """The triggers' thresholds as set from the console: the newest row is in force (over the
    ``ML_TRIGGER_*`` settings), the older ones are its history."""

    every_hours = models.FloatField()
    labels = models.PositiveIntegerField()
    window_hours = models.FloatField()
    min_precision = models.FloatField()
    min_recall = models.FloatField()
    min_sample = models.PositiveIntegerField()
    max_psi = models.FloatField()
    cooldown_hours = models.FloatField()
    changed_by = models.CharField(max_length=150)
    at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"triggers set by {self.changed_by} at {self.at:%Y-%m-%d %H:%M}"
