"""Fraud-side tables: model deployments, scores (one per payment event scored), shadow scores
and the review queue.

``FraudScore.event_id`` is the id of the payment event that was scored
(``payments.authorized.v1`` at the authorization checkpoint, ``payments.capture_requested.v1``
at the capture's): the idempotency key of the scorers (at-least-once input, exactly one score
per payment event).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now

from events.contracts import PaymentAuthorized, PaymentCaptureRequested

# The checkpoints, as their payment events name them (``CheckpointPayment.checkpoint``).
AUTHORIZATION = PaymentAuthorized.checkpoint
CAPTURE = PaymentCaptureRequested.checkpoint
CHECKPOINTS = (AUTHORIZATION, CAPTURE)
# A capture decision's effect on the fare (``rideshare.services.verdicts``).
CAPTURE_ACTIONS = {"approve": "Capture", "review": "Hold fare", "decline": "Void fare"}


class Deployment(models.Model):
    """A LightGBM model version the scorer may load, and the part it plays.

    The scorer reads the text model at ``artifact_path``, verifies its ``sha256`` before parsing
    it and checks its input columns against ``feature_names`` and ``feature_service``. At most
    one row is the champion; ``fraud.services.deployment_set`` keeps it so.
    """

    class Role(models.TextChoices):
        CHAMPION = "champion"
        SHADOW = "shadow"
        CANARY = "canary"
        RETIRED = "retired"

    model_version = models.CharField(max_length=64, unique=True)
    artifact_path = models.CharField(max_length=500)
    sha256 = models.CharField(max_length=64)
    feature_service = models.CharField(max_length=64)
    # The checkpoint it scores (its feature service's: ``authorization`` or ``capture``); each
    # checkpoint has its own scorer and its own champion.
    checkpoint = models.CharField(max_length=16, default=AUTHORIZATION)
    # The model's input columns, in the order the booster expects them.
    feature_names = models.JSONField(default=list)
    role = models.CharField(max_length=16, choices=Role.choices)
    # Share (0-1) of cards a canary decides for; ignored for other roles.
    canary_share = models.FloatField(default=0.0)
    # Score >= decline_threshold declines, >= review_threshold reviews, else approves.
    review_threshold = models.FloatField()
    decline_threshold = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["checkpoint"],
                condition=Q(role="champion"),
                name="one_champion_per_checkpoint",
            ),
            models.CheckConstraint(
                condition=Q(canary_share__gte=0.0) & Q(canary_share__lte=1.0),
                name="canary_share_0_1",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model_version} ({self.role})"


class JSONTextField(models.JSONField):
    """A ``JSONField`` that PostgreSQL keeps as ``json`` (the text, checked) rather than
    ``jsonb`` (parsed into its binary form, every number into a ``numeric``).

    For a column written once per row, read back whole and never searched: a score's served
    vector, whose conversion to ``jsonb`` is most of the cost of the scorer's insert
    (docs/performance.md). The text also comes back exactly as it was written. Other
    databases: as ``JSONField``."""

    def db_type(self, connection):
        if connection.vendor == "postgresql":
            return "json"
        return super().db_type(connection)

    def get_db_prep_value(self, value, connection, prepared=False):
        if connection.vendor != "postgresql":
            return super().get_db_prep_value(value, connection, prepared)
        from django.db.backends.postgresql.operations import get_json_dumps
        from psycopg.types.json import Json

        if not prepared:
            value = self.get_prep_value(value)
        return Json(value, dumps=get_json_dumps(self.encoder))

    def from_db_value(self, value, expression, connection):
        # psycopg loads ``json`` columns itself (Django asks it for ``jsonb`` as text).
        if value is not None and not isinstance(value, str):
            return value
        return super().from_db_value(value, expression, connection)


class Decision(models.TextChoices):
    APPROVE = "approve"
    REVIEW = "review"
    DECLINE = "decline"


class FraudScore(models.Model):
    """The score and decision of one payment event at a checkpoint; at most one row per payment
    event."""

    event_id = models.UUIDField(unique=True)
    # Which checkpoint scored it: the authorization (its decision approves, reviews or declines
    # the booking) or the capture (captures, holds or voids the fare).
    checkpoint = models.CharField(max_length=16, default=AUTHORIZATION)
    payment_id = models.CharField(max_length=64)
    card_id = models.CharField(max_length=64)
    rider_id = models.CharField(max_length=64)
    pickup_zone = models.CharField(max_length=32, blank=True)
    amount_cents = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    # When the payment event scored happened (its occurred_at).
    occurred_at = models.DateTimeField()
    scored_at = models.DateTimeField()
    score = models.FloatField()
    decision = models.CharField(max_length=16, choices=Decision.choices)
    model_version = models.CharField(max_length=64)
    # Which deployment decided: champion or canary.
    role = models.CharField(max_length=16)
    # [{feature, value, contribution, text}], strongest first, at most three.
    reasons = models.JSONField(default=list)
    degraded = models.BooleanField(default=False)
    degraded_features = models.JSONField(default=list)
    rescored_at = models.DateTimeField(null=True, blank=True)
    # From the payment's occurred_at to the score being computed, in milliseconds.
    latency_ms = models.FloatField()
    # The canary that should have decided this payment but failed (raised, or gave no
    # probability): the champion decided instead (``fraud.scoring.score_batch``).
    failed_model = models.CharField(max_length=64, blank=True, default="")
    # The deciding model's prediction time for this payment, µs (``Scored.model_us``).
    model_us = models.FloatField(null=True, blank=True)
    # Whether the features served are those the training join gives for this payment
    # (``features.serving.ServedVector.consistency``): exact, or stale by ``consistency_lag_ms``
    # (the stream processor that far behind the payment); blank for scores from before the mark.
    consistency = models.CharField(
        max_length=8, choices=[("exact", "exact"), ("stale", "stale")], blank=True, default=""
    )
    consistency_lag_ms = models.FloatField(null=True, blank=True)
    # The list entries and rules that matched (``fraud.policy``): [{type, id, name, action,
    # acted, shadow}], acted on or not.
    matched = models.JSONField(default=list, blank=True)
    # The vector exactly as served (values, statuses, event timestamps, request time), so a
    # replay after a crash can write the feature log row of what was actually served.
    features = JSONTextField(default=dict)
    # The scorer batch whose transaction inserted the row: tells that batch which of its rows
    # it inserted (the others were already there: a redelivery, or another scorer).
    batch_id = models.UUIDField(null=True, blank=True)

    class Meta:
        indexes = [
            # The analysts' flagged payments, newest first (``fraud.selectors``): only the few
            # flagged rows enter it, not every approved payment. (Newest first over all rows
            # is the primary key read backwards.)
            models.Index(
                fields=["-id"],
                name="fraudscore_flagged",
                condition=Q(decision__in=[Decision.REVIEW, Decision.DECLINE]),
            ),
            models.Index(fields=["id"], name="fraudscore_degraded", condition=Q(degraded=True)),
            # A label names its payment: the learning loop's recall reads the decision by it.
            models.Index(fields=["payment_id"], name="fraudscore_payment"),
        ]

    def __str__(self) -> str:
        return f"payment {self.payment_id}: {self.decision} ({self.score:.3f})"

    @property
    def driver_id(self) -> str | None:
        """The driver the payment was scored with: known at the capture checkpoint only."""
        return (self.features or {}).get("request", {}).get("driver_id")

    @property
    def action_display(self) -> str:
        """What the decision did, in the words of its checkpoint: at capture the same three
        decisions capture the fare, hold it for an analyst or void the hold."""
        if self.checkpoint == CAPTURE:
            return CAPTURE_ACTIONS[self.decision]
        return self.get_decision_display()

    @property
    def logged(self) -> bool:
        """Whether the served vector is in the feature log and the ``fraud.scored.v1`` event
        acknowledged (no ``UnloggedScore`` row left)."""
        return not UnloggedScore.objects.filter(score_id=self.id).exists()


class UnloggedScore(models.Model):
    """A score whose served vector is not in the feature log yet, or whose ``fraud.scored.v1``
    event is not acknowledged yet: inserted with the score, deleted once both are done (the
    scorer's flush, or the sweep of those left behind).

    A row of its own, not a flag on the score: finishing a thousand scores a second deletes a
    thousand narrow rows instead of rewriting a thousand wide ones, and a score row is
    written once.
    """

    score = models.OneToOneField(
        FraudScore, primary_key=True, on_delete=models.CASCADE, related_name="unlogged"
    )
    # Set by the database as the score is recorded: the sweep takes the rows left this long
    # without reading the scores (oldest first by ``score_id``, which follows it).
    created_at = models.DateTimeField(db_default=Now())

    def __str__(self) -> str:
        return f"score {self.score_id} unlogged"


class ShadowScore(models.Model):
    """What a shadow model would have decided for a payment: logged, never acted on."""

    event_id = models.UUIDField()
    model_version = models.CharField(max_length=64)
    score = models.FloatField()
    decision = models.CharField(max_length=16, choices=Decision.choices)
    scored_at = models.DateTimeField()
    # Its prediction time for this payment, µs (``fraud.scoring.Scored.model_us``).
    model_us = models.FloatField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["event_id", "model_version"], name="shadow_once")
        ]

    def __str__(self) -> str:
        return f"{self.model_version} on {self.event_id}: {self.decision}"


class ReviewItem(models.Model):
    """A payment the scorer sent to review, waiting for (or decided by) an analyst.

    An analyst claims it (``claimed_by``) before deciding, so two never decide the same one;
    a claim older than ``FRAUD_REVIEW_CLAIM_MINUTES`` lapses. The decision's ``outcome`` says
    what happens to the payment and is the label the learning loop reads
    (``fraud.services.reviews``)."""

    class Status(models.TextChoices):
        OPEN = "open"
        DECIDED = "decided"

    class Outcome(models.TextChoices):
        APPROVED = "approved", "Approved"
        LEGITIMATE = "legitimate", "Legitimate, refunded"
        REFUNDED_AS_FRAUD = "refunded_as_fraud", "Refunded as fraud"
        CONFIRMED_FRAUD = "confirmed_fraud", "Confirmed fraud"

    score = models.OneToOneField(FraudScore, on_delete=models.CASCADE, related_name="review")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    # Where the rider paid from (the payment event's context: device, network, location when
    # the app shared it), for the case page.
    device_id = models.CharField(max_length=64, blank=True)
    ip = models.CharField(max_length=45, blank=True)
    card_brand = models.CharField(max_length=16, blank=True)
    card_last4 = models.CharField(max_length=4, blank=True)
    rider_lat = models.FloatField(null=True, blank=True)
    rider_lng = models.FloatField(null=True, blank=True)
    # The trip's pickup and drop-off (when the payment event carried them), for the case map.
    pickup_lat = models.FloatField(null=True, blank=True)
    pickup_lng = models.FloatField(null=True, blank=True)
    dropoff_lat = models.FloatField(null=True, blank=True)
    dropoff_lng = models.FloatField(null=True, blank=True)
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )  # fmt: skip
    claimed_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )  # fmt: skip
    decided_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=24, choices=Outcome.choices, blank=True)
    # Open past the review SLA (``FRAUD_REVIEW_SLA_MINUTES``): first in the queue.
    escalated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "-id"], name="review_status_id")]
        permissions = [("review_payments", "Can work the fraud review queue and decide reviews")]

    def __str__(self) -> str:
        return f"review of {self.score_id} ({self.status})"


# The outcomes that say the payment was fraud: their label is ``confirmed_fraud``.
FRAUD_OUTCOMES = frozenset(
    {ReviewItem.Outcome.REFUNDED_AS_FRAUD, ReviewItem.Outcome.CONFIRMED_FRAUD}
)


class ReviewNote(models.Model):
    """An analyst's note on a review, kept with its case."""

    review = models.ForeignKey(ReviewItem, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    text = models.TextField(max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"note on review {self.review_id}"


class PolicyAction(models.TextChoices):
    """What a list entry or a rule does to a payment it matches (``fraud.policy``)."""

    BLOCK = "block"
    REVIEW = "review"
    ALLOW = "allow"


class ListEntry(models.Model):
    """A card, rider, device, IP or driver on a list: blocked, sent to review or allowed, before
    or after the model (``fraud.policy``), until ``expires_at`` (null: until removed).
    Removing one keeps the row (``removed_at``): scores record which entries matched them."""

    class Kind(models.TextChoices):
        CARD = "card"
        RIDER = "rider"
        DEVICE = "device"
        IP = "ip", "IP address"
        DRIVER = "driver"

    Action = PolicyAction

    class Stage(models.TextChoices):
        BEFORE = "before", "before the model (decides)"
        AFTER = "after", "after the model (adjusts)"

    kind = models.CharField(max_length=8, choices=Kind.choices)
    value = models.CharField(max_length=64)
    action = models.CharField(max_length=8, choices=Action.choices)
    stage = models.CharField(max_length=8, choices=Stage.choices, default=Stage.BEFORE)
    reason = models.CharField(max_length=200)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )  # fmt: skip
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    removed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "value"], condition=Q(removed_at__isnull=True), name="listed_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.value}: {self.action}"


class Rule(models.Model):
    """A rule over the served features and the request (``fraud.policy``): its expression,
    what it does when it matches, and whether it acts (``active``), is only recorded
    (``shadow``) or is switched off."""

    Action = PolicyAction

    class Mode(models.TextChoices):
        ACTIVE = "active"
        SHADOW = "shadow", "shadow (recorded, not acted on)"
        OFF = "off"

    name = models.CharField(max_length=80, unique=True)
    expression = models.TextField(max_length=2000)
    action = models.CharField(max_length=8, choices=Action.choices)
    priority = models.PositiveIntegerField(default=100, help_text="lowest acts first")
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.SHADOW)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )  # fmt: skip
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"rule {self.name} ({self.mode})"
