"""The golden set: a few hundred scoring requests' model inputs kept with the project
(``ml/golden/fraud_scoring_v1.csv``), on which every candidate model is smoke- and
behaviour-tested (``ml.gates``). Made once from a simulated history by ``python manage.py
golden_set`` and committed, so every candidate meets the same payments; made again only when the
feature service changes (its columns must be the model's inputs)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from features.definitions import FRAUD_SCORING_V1

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"


def golden_path(service: str = FRAUD_SCORING_V1.name) -> Path:
    return GOLDEN_DIR / f"{service}.csv"


def golden_sample(
    frame: pd.DataFrame, features: Sequence[str], *, rows: int, seed: int
) -> pd.DataFrame:
    """Return ``rows`` rows of a training set (every fraud among them, up to a fifth, the rest
    legitimate, drawn with ``seed``), its model inputs then ``label``, in a stable order."""
    fraud = frame[frame["label"] == 1]
    fraud = fraud.sample(n=min(len(fraud), rows // 5), random_state=seed)
    legit = frame[frame["label"] == 0]
    legit = legit.sample(n=min(len(legit), rows - len(fraud)), random_state=seed)
    picked = pd.concat([fraud, legit]).sort_index()
    return picked[[*features, "label"]].reset_index(drop=True)


def golden_write(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, float_format="%.10g")


def golden_read(service: str = FRAUD_SCORING_V1.name) -> pd.DataFrame:
    """Return the golden set of ``service``: its columns as nullable floats, ``label`` as int."""
    frame = pd.read_csv(golden_path(service))
    features = [c for c in frame.columns if c != "label"]
    return frame.astype({**dict.fromkeys(features, "Float64"), "label": int})
