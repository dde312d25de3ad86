"""The models a scorer runs, loaded from the ``Deployment`` table and reloaded when it changes.

Every deployment that is not retired is loaded through ``fraud.artifacts.booster_load`` (sha256
checked before parsing, feature names checked against the deployment and its feature service).
A deployment failing a check is refused with a log line saying why and left out; a refused
champion leaves the scorer without a champion, and it scores nothing until one loads. Canaries
and shadows must read the champion's feature service (one online read per batch).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

import lightgbm as lgb

from fraud.artifacts import ModelRefused, booster_load
from fraud.models import AUTHORIZATION, Deployment
from fraud.scoring import LoadedModel, ModelSet
from fraud.selectors import deployments_active, deployments_stamp

log = logging.getLogger(__name__)

_Key = tuple[str, str, str, tuple[str, ...], str]


def model_set_build(
    deployments: Iterable[Deployment], *, boosters: dict[_Key, lgb.Booster] | None = None
) -> ModelSet:
    """Return the model set of ``deployments`` (retired ones are ignored). ``boosters`` caches
    verified boosters by (version, path, sha256, feature names, service) across calls, so a role
    or threshold change does not read the file again."""
    cache = boosters if boosters is not None else {}
    loaded: list[LoadedModel] = []
    refused: dict[str, str] = {}
    for d in deployments:
        if d.role == Deployment.Role.RETIRED:
            continue
        names = tuple(d.feature_names)
        key = (d.model_version, d.artifact_path, d.sha256, names, d.feature_service)
        try:
            if key not in cache:
                cache[key] = booster_load(
                    artifact_path=d.artifact_path,
                    sha256=d.sha256,
                    feature_names=list(names),
                    feature_service=d.feature_service,
                )
        except ModelRefused as exc:
            refused[d.model_version] = str(exc)
            continue
        loaded.append(
            LoadedModel(
                model_version=d.model_version,
                role=d.role,
                booster=cache[key],
                feature_names=names,
                feature_service=d.feature_service,
                review_threshold=d.review_threshold,
                decline_threshold=d.decline_threshold,
                canary_share=d.canary_share,
            )
        )
    champion = next((m for m in loaded if m.role == Deployment.Role.CHAMPION), None)
    others = []
    for model in loaded:
        if model is champion:
            continue
        if champion is not None and model.feature_service != champion.feature_service:
            refused[model.model_version] = (
                f"reads feature service {model.feature_service}, the champion "
                f"{champion.feature_service}: a scorer reads one service per batch"
            )
            continue
        others.append(model)
    return ModelSet(
        champion=champion,
        canaries=tuple(m for m in others if m.role == Deployment.Role.CANARY),
        shadows=tuple(m for m in others if m.role == Deployment.Role.SHADOW),
        refused=refused,
    )


def model_set_describe(models: ModelSet) -> str:
    """Return one line naming the champion, canaries (with shares) and shadows."""
    parts = [f"champion {models.champion.model_version}" if models.champion else "no champion"]
    parts += [f"canary {c.model_version} ({c.canary_share:.0%})" for c in models.canaries]
    parts += [f"shadow {s.model_version}" for s in models.shadows]
    return ", ".join(parts)


class DeploymentWatcher:
    """Holds the current model set of ``checkpoint``; ``current()`` reloads it when the table
    changed, checking at most every ``poll_s`` seconds (one aggregate query)."""

    def __init__(
        self, *, poll_s: float = 2.0, clock: Any = time.monotonic, checkpoint: str = AUTHORIZATION
    ):
        self.checkpoint = checkpoint
        self.poll_s = poll_s
        self.clock = clock
        self.models = ModelSet(champion=None)
        self._stamp: object = object()
        self._checked = -float("inf")
        self._boosters: dict[_Key, lgb.Booster] = {}

    def current(self) -> ModelSet:
        """Return the model set, reloaded first if the deployments changed since last time."""
        now = self.clock()
        if now - self._checked < self.poll_s:
            return self.models
        self._checked = now
        stamp = deployments_stamp()
        if stamp == self._stamp:
            return self.models
        self._stamp = stamp
        self.models = model_set_build(
            deployments_active(checkpoint=self.checkpoint), boosters=self._boosters
        )
        at = self.checkpoint
        for version, reason in self.models.refused.items():
            log.error("fraud scorer (%s): refused model %s: %s", at, version, reason)
        if self.models.champion is None:
            log.error(
                "fraud scorer (%s): no usable champion deployment, scoring is paused until one "
                "loads (set one with fraud.services.deployment_set)", at,
            )  # fmt: skip
        else:
            log.info("fraud scorer (%s): models loaded: %s", at, model_set_describe(self.models))
        return self.models
