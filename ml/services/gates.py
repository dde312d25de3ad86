"""Writes of the offline gates: run them on a registered candidate, record the results, approve
or reject it (``ml.gates`` says what each gate checks)."""

from __future__ import annotations

import lightgbm as lgb
import pandas as pd
from django.conf import settings

from features.definitions import FEATURE_SERVICES, FRAUD_SCORING_V1
from fraud.selectors import deployment_champion
from ml.gates import GateSettings, as_records, gates_passed, gates_run, thresholds_of
from ml.golden import golden_read
from ml.models import ModelVersion
from ml.registry import model_load
from ml.selectors import champion_get
from ml.train import DEFAULT_THRESHOLDS, model_features


def model_gate(
    *,
    model: ModelVersion,
    booster: lgb.Booster,
    window: pd.DataFrame,
    constant: list[str],
    time_column: str,
    twin: lgb.Booster | None = None,
    service: str = FRAUD_SCORING_V1.name,
) -> ModelVersion:
    """Run the offline gates on ``model`` (its ``booster``): the training set's ``constant``
    inputs, the golden set, and ``window`` (labelled rows its ``twin`` did not train on, with
    ``time_column`` and ``card_id``, none the champion learned from: ``TrainResult.window``;
    ``booster`` is the twin when not given) against the champion; record each result and the
    thresholds matched to the champion's alert volume on ``window`` (not deployed: a person's
    to choose), and set the model ``approved`` or ``rejected``. Return the model. A model
    gated before is returned as it is (idempotent). Nothing is deployed."""
    if model.status != "candidate":
        return model
    # The champion of the candidate's own checkpoint: a capture model is held to the capture
    # champion, never to the authorization's.
    checkpoint = FEATURE_SERVICES[service].checkpoint
    champion = champion_get(checkpoint=checkpoint)
    if champion is not None and champion.pk == model.pk:
        champion = None
    deployment = deployment_champion(checkpoint=checkpoint)
    rules = GateSettings(
        review_threshold=(
            deployment.review_threshold if deployment is not None else DEFAULT_THRESHOLDS["review"]
        ),
        decline_threshold=(
            deployment.decline_threshold
            if deployment is not None
            else DEFAULT_THRESHOLDS["decline"]
        ),
        may_be_constant=tuple(settings.ML_GATE_MAY_BE_CONSTANT),
    )
    rival = None
    if champion is not None and list(champion.feature_names) == model_features(service):
        rival = model_load(champion.version)
    results = gates_run(
        booster,
        expected=model_features(service),
        golden=golden_read(service),
        window=window,
        constant=constant,
        champion=rival,
        champion_reference=champion.metrics.get("reference") if champion else None,
        rules=rules,
        day=time_column,
        twin=twin,
    )
    status = "approved" if gates_passed(results) else "rejected"
    matched = thresholds_of(results) or {}
    ModelVersion.objects.filter(pk=model.pk).update(
        status=status,
        gates=as_records(results),
        review_threshold=matched.get("review"),
        decline_threshold=matched.get("decline"),
    )
    model.refresh_from_db()
    return model
