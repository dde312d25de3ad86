"""Helpers of the scorer's tests: an applied feature store, features written straight to its
online store, scorers, and what they recorded."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

import pandas as pd

from events.backends.embedded import EmbeddedBus
from events.bus import Bus, Message
from events.contracts import Event
from features.definitions import VIEWS_BY_NAME
from features.store import FeatureConfig, feature_store
from fraud.deployments import model_set_build
from fraud.scorer import Scorer, ScorerSettings
from fraud.scoring import ModelSet
from fraud.selectors import deployments_active
from tests.features.streams import messages_for

NAMESPACE = "t"


def features_write(
    config: FeatureConfig, view: str, keys: dict[str, str], values: dict, at: datetime
) -> None:
    """Write one row of ``view`` for ``keys`` (other features null) to the online store."""
    declared = VIEWS_BY_NAME[view]
    row = {**keys, "event_timestamp": at, "created_timestamp": at}
    row.update({f.name: values.get(f.name) for f in declared.features})
    feature_store(config).write_to_online_store(view, pd.DataFrame([row]))


def scorer_make(
    config: FeatureConfig, tmp_path: Path, *, bus: Bus | None = None, **settings
) -> Scorer:
    """Return a scorer reading ``t.payments.authorized.v1`` (embedded bus by default), its
    first feature read done (as ``run`` does before consuming). The feature read budget is
    generous unless given: a busy test machine must not degrade a batch by chance."""
    settings.setdefault("feature_timeout_s", 5.0)
    # Each batch logs its vectors at once unless a test says otherwise.
    settings.setdefault("log_flush_s", 0.0)
    scorer = Scorer(
        bus=bus or EmbeddedBus(tmp_path / "event-log.sqlite3"),
        config=config,
        settings=ScorerSettings(**settings),
        namespace=NAMESPACE,
    )
    assert scorer.reader.warm()
    return scorer


def messages(events: Iterable[Event | tuple[Event, bytes]]) -> list[Message]:
    return messages_for(events, namespace=NAMESPACE)


def models() -> ModelSet:
    """Return the model set of the deployments in the database."""
    return model_set_build(deployments_active())


def batch(scorer: Scorer, events: Sequence[Event | tuple[Event, bytes]]) -> None:
    """Score ``events`` as one polled batch with the deployed models; wait for the feature log
    write it started."""
    scorer.process_batch(messages(events), models=models())
    scorer.flush()
