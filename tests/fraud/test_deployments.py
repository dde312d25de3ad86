"""Deployments: set through one service (at most one champion, validated), loaded verified,
refused with a reason, reloaded when the table changes."""

from __future__ import annotations

import logging

import pytest

from fraud.deployments import DeploymentWatcher, model_set_build
from fraud.models import Deployment
from fraud.services import DeploymentInvalid, deployment_set
from tests.fraud.factories import FEATURES, SERVICE, model_deploy, model_train

pytestmark = pytest.mark.django_db


def _set(model, **overrides) -> Deployment:
    arguments = {
        "model_version": "m1",
        "artifact_path": str(model.path),
        "sha256": model.sha256,
        "feature_service": SERVICE,
        "feature_names": model.feature_names,
        "role": "champion",
        "review_threshold": 0.5,
        "decline_threshold": 0.9,
        **overrides,
    }
    return deployment_set(**arguments)


def test_deployment_set_upserts_by_version(tmp_path):
    model = model_train(tmp_path)
    first = _set(model, role="shadow")
    second = _set(model, role="canary", canary_share=0.25, review_threshold=0.6)
    assert first.id == second.id
    row = Deployment.objects.get()
    assert (row.role, row.canary_share, row.review_threshold) == ("canary", 0.25, 0.6)
    assert row.feature_names == FEATURES


def test_a_new_champion_retires_the_previous_one(tmp_path):
    model = model_train(tmp_path)
    _set(model, model_version="m1")
    _set(model, model_version="m2")
    roles = dict(Deployment.objects.values_list("model_version", "role"))
    assert roles == {"m1": "retired", "m2": "champion"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"role": "boss"}, "role must be one of champion, shadow, canary, retired, not 'boss'"),
        ({"sha256": "abc"}, "sha256 must be 64 lowercase hex digits"),
        ({"review_threshold": 0.95}, "thresholds must satisfy 0 <= review_threshold <= "
         "decline_threshold <= 1, got review 0.95, decline 0.9"),
        ({"canary_share": 1.5}, "canary_share must be within 0-1, got 1.5"),
        ({"feature_names": ["card_colour"]},
         "features not served by fraud_scoring_v1: card_colour"),
        ({"feature_names": []}, "feature_names must be a non-empty list of feature names"),
        ({"model_version": ""}, "model_version must be 1-64 characters"),
    ],
)  # fmt: skip
def test_an_invalid_deployment_is_refused_and_nothing_is_written(tmp_path, overrides, message):
    model = model_train(tmp_path)
    _set(model, model_version="m0")
    with pytest.raises(DeploymentInvalid) as refused:
        _set(model, **overrides)
    assert str(refused.value) == message
    assert list(Deployment.objects.values_list("model_version", "role")) == [("m0", "champion")]


def test_the_model_set_has_one_champion_canaries_shadows_and_ignores_retired(tmp_path):
    model_deploy(tmp_path, version="old")
    model_deploy(tmp_path, version="champ")
    model_deploy(tmp_path, version="can", role="canary", canary_share=0.1)
    model_deploy(tmp_path, version="sha", role="shadow")
    models = model_set_build(Deployment.objects.order_by("model_version"))
    assert models.champion.model_version == "champ"
    assert [m.model_version for m in models.canaries] == ["can"]
    assert [m.model_version for m in models.shadows] == ["sha"]
    assert models.refused == {}


def test_a_tampered_champion_is_refused_and_the_scorer_says_why(tmp_path, caplog):
    deployment = model_deploy(tmp_path, version="champ")
    with open(deployment.artifact_path, "a") as artifact:
        artifact.write("\n")
    watcher = DeploymentWatcher(poll_s=0)
    with caplog.at_level(logging.ERROR, logger="fraud.deployments"):
        models = watcher.current()
    assert models.champion is None
    assert models.refused["champ"].startswith(f"sha256 mismatch for {deployment.artifact_path}")
    assert [r.getMessage() for r in caplog.records] == [
        f"fraud scorer (authorization): refused model champ: {models.refused['champ']}",
        "fraud scorer (authorization): no usable champion deployment, scoring is paused until "
        "one loads "
        "(set one with fraud.services.deployment_set)",
    ]


def test_the_watcher_reloads_when_the_table_changes_and_only_then(tmp_path):
    now = [0.0]
    watcher = DeploymentWatcher(poll_s=2.0, clock=lambda: now[0])
    assert watcher.current().champion is None
    model_deploy(tmp_path, version="champ")
    assert watcher.current().champion is None  # not checked again before poll_s
    now[0] = 2.0
    first = watcher.current()
    assert first.champion.model_version == "champ"
    now[0] = 4.0
    assert watcher.current() is first  # unchanged table: the same set
    model_deploy(tmp_path, version="champ", review=0.3)
    now[0] = 6.0
    reloaded = watcher.current()
    assert reloaded.champion.review_threshold == 0.3
    # Same artifact: the verified booster is reused, not read again.
    assert reloaded.champion.booster is first.champion.booster
