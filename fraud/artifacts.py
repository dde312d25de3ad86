"""Model artifacts: LightGBM text models, verified before they are parsed.

A deployment names a text model file, its sha256 and its input columns. Loading reads the bytes,
checks the digest *before* LightGBM parses them (a tampered or truncated file is never parsed),
then checks the booster's feature names against the deployment's and against the feature
service's features. Only LightGBM's text format is read: never pickle.

No Django: the scorer and the ml room both call these with plain values.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import lightgbm as lgb

from features.definitions import FEATURE_SERVICES
from features.training import service_features

# Objectives whose prediction is a probability of fraud in [0, 1].
PROBABILITY_OBJECTIVES = ("binary", "cross_entropy")


class ModelRefused(Exception):
    """A model artifact failed a check; the message says which and why."""


def service_feature_names(feature_service: str) -> list[str]:
    """Return every feature name ``feature_service`` serves: stored, then on-demand.

    Raise ``ModelRefused`` when no feature service has that name.
    """
    try:
        declared = FEATURE_SERVICES[feature_service]
    except KeyError:
        raise ModelRefused(
            f"unknown feature service {feature_service!r} "
            f"(known: {', '.join(sorted(FEATURE_SERVICES))})"
        ) from None
    return [name for name, _ in service_features(declared)] + list(declared.on_demand)


def feature_names_check(feature_names: list[str], feature_service: str) -> None:
    """Raise ``ModelRefused`` unless ``feature_names`` is a non-empty list of distinct features
    that ``feature_service`` serves."""
    if not feature_names or not all(isinstance(n, str) for n in feature_names):
        raise ModelRefused("feature_names must be a non-empty list of feature names")
    if len(set(feature_names)) != len(feature_names):
        raise ModelRefused("feature_names has duplicates")
    served = set(service_feature_names(feature_service))
    unknown = [n for n in feature_names if n not in served]
    if unknown:
        raise ModelRefused(f"features not served by {feature_service}: {', '.join(unknown)}")


def file_sha256(path: str | Path) -> str:
    """Return the hex sha256 of the file at ``path``."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _objective(text: str) -> str:
    for line in text.splitlines():
        if line.startswith("objective="):
            return line.removeprefix("objective=").strip()
        if line.startswith("Tree="):
            break
    return ""


def booster_load(
    *, artifact_path: str, sha256: str, feature_names: list[str], feature_service: str
) -> lgb.Booster:
    """Return the LightGBM booster stored as a text model at ``artifact_path``.

    Check, in this order, and raise ``ModelRefused`` at the first failure: the file is readable;
    its sha256 equals ``sha256`` (before parsing); LightGBM parses it; its objective gives a
    probability (binary); its feature names equal
    ``feature_names`` (same order); each is a feature of ``feature_service``. Read only.
    """
    try:
        data = Path(artifact_path).read_bytes()
    except OSError as exc:
        raise ModelRefused(f"cannot read {artifact_path}: {exc.strerror or exc}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256.lower():
        raise ModelRefused(
            f"sha256 mismatch for {artifact_path}: file has {digest}, deployment says {sha256}"
        )
    try:
        text = data.decode("utf-8")
        booster = lgb.Booster(model_str=text)
    except (UnicodeDecodeError, lgb.basic.LightGBMError) as exc:
        raise ModelRefused(f"{artifact_path} is not a LightGBM text model: {exc}") from exc
    objective = _objective(text)
    if objective.split(" ")[0] not in PROBABILITY_OBJECTIVES:
        raise ModelRefused(
            f"{artifact_path} has objective {objective!r}: the scorer needs a probability "
            f"({', '.join(PROBABILITY_OBJECTIVES)})"
        )
    names = booster.feature_name()
    if names != list(feature_names):
        raise ModelRefused(
            f"{artifact_path} has features {names}, deployment says {list(feature_names)}"
        )
    feature_names_check(names, feature_service)
    return booster
