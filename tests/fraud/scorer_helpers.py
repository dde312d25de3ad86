"""Helpers of the scorer's tests: an applied feature store, features written straight to its
online store, scorers, and what they recorded and published."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

import pandas as pd

from events.backends.embedded import EmbeddedBus
from events.bus import Bus, Message
from events.contracts import Event, FraudScored
from features.definitions import VIEWS_BY_NAME
from features.processor import StreamProcessor, state_from_config
from features.store import FeatureConfig, feature_store
from fraud.deployments import model_set_build
from fraud.scorer import Scorer, ScorerSettings
from fraud.scoring import ModelSet
from fraud.selectors import deployments_active
from tests.features.streams import messages_for
from tests.fraud.factories import NOW, payment

NAMESPACE = "t"


def features_write(
    config: FeatureConfig, view: str, keys: dict[str, str], values: dict, at: datetime
) -> None:
    """Write one row of ``view`` for ``keys`` (other features null) to the online store."""
    declared = VIEWS_BY_NAME[view]
    row = {**keys, "event_timestamp": at, "created_timestamp": at}
    row.update({f.name: values.get(f.name) for f in declared.features})
    feature_store(config).write_to_online_store(view, pd.DataFrame([row]))


def payments_applied(
    config: FeatureConfig, card_id: str, count: int, *, at: datetime = NOW
) -> None:
    """Apply ``count`` payments of ``card_id`` at ``at`` (a minute before the tests' payments
    by default) as the stream processor does: to the window state the scorer serves stream
    views from, and to the online store."""
    processor = StreamProcessor(
        bus=None, config=config, state=state_from_config(config), namespace=NAMESPACE
    )
    try:
        processor.process_batch(
            messages_for(
                [payment(card_id=card_id, occurred_at=at) for _ in range(count)],
                namespace=NAMESPACE,
            )
        )
    finally:
        processor.state.close()


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


def published(
    bus: Bus, topic: str, *, wait_s: float = 10.0, idle_s: float = 1.0
) -> list[FraudScored]:
    """Return the ``fraud.scored.v1`` events on ``topic`` as a new group reads them (a key's
    in order): waiting up to ``wait_s`` for the first (a Kafka group joins in the background),
    then until nothing came for ``idle_s``."""
    consumer = bus.consumer(group=f"check-{uuid.uuid4().hex[:8]}", topics=[topic])
    events: list[FraudScored] = []
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        batch = consumer.poll(timeout=0.2, max_records=1000)
        if batch:
            events += [FraudScored.model_validate_json(m.value) for m in batch]
            deadline = time.monotonic() + idle_s
    consumer.close()
    return events
