"""Consistency reports: do the features served equal their offline recomputation?

Two reports, each kept as JSON under the data directory (the latest one) and exposed as metrics
(``features.metrics``):

- ``online``: vectors read from the online store after the fact against the DuckDB engine's
  recomputation as of the same instant (``consistency_run``);
- ``served``: the vectors the scorer logged against the training set of the same requests
  (``served_consistency_run``), split by what the server vouched for (exact or stale).
"""

from features.consistency.online import (
    FeatureConsistency,
    Report,
    Served,
    compare,
    consistency_run,
    last_report,
    online_sample,
    sample_keys,
)
from features.consistency.reports import same
from features.consistency.served import (
    ServedFeature,
    ServedReport,
    last_served_report,
    served_compare,
    served_consistency_run,
)

__all__ = [
    "FeatureConsistency",
    "Report",
    "Served",
    "ServedFeature",
    "ServedReport",
    "compare",
    "consistency_run",
    "last_report",
    "last_served_report",
    "online_sample",
    "same",
    "sample_keys",
    "served_compare",
    "served_consistency_run",
]
