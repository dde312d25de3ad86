"""What both consistency reports share: comparing two values, the shares they report, and
keeping the latest report as JSON under the data directory (read back by ``features.metrics``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from features.store import FeatureConfig


def same(served: Any, offline: Any) -> bool:
    """Return whether two feature values agree (floats to 1e-9 relative)."""
    if served is None or offline is None:
        return served is None and offline is None
    if isinstance(served, float) or isinstance(offline, float):
        return math.isclose(float(served), float(offline), rel_tol=1e-9, abs_tol=1e-12)
    return served == offline


def share(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


def report_json(report: Any, rates: Sequence[str]) -> str:
    """Return ``report`` as JSON, each feature with its derived ``rates`` beside its counts
    (for readers of the file; ``report_load`` derives them again)."""
    data = asdict(report)
    for item, feature in zip(data["features"], report.features, strict=True):
        item.update({rate: getattr(feature, rate) for rate in rates})
    return json.dumps(data, indent=2, default=str)


def report_load(cls: type, feature_cls: type, text: str) -> Any:
    """Return the ``cls`` report saved as ``text`` by ``report_json``, its features as
    ``feature_cls``."""
    data = json.loads(text)
    counts = set(feature_cls.__dataclass_fields__)
    features = [
        feature_cls(**{k: v for k, v in f.items() if k in counts}) for f in data["features"]
    ]
    # A field added since the file was written keeps its default.
    totals = {
        name: data[name]
        for name in cls.__dataclass_fields__
        if name not in ("features", "examples") and name in data
    }
    return cls(**totals, features=features, examples=data.get("examples", []))


def report_save(config: FeatureConfig, name: str, text: str) -> None:
    """Write ``text`` as the report file ``name`` under the data directory, through a temporary
    file so a reader never sees half a report."""
    path = config.data_dir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def report_last(config: FeatureConfig, name: str, cls: type) -> Any:
    """Return the ``cls`` report last saved as ``name``, or ``None`` when none was run."""
    path = config.data_dir / name
    return cls.from_json(path.read_text()) if path.exists() else None
