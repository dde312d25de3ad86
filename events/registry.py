"""Every stream consumer, by name: what it runs (a per-event handler, or the factory of a batch
step), by dotted path imported only when run, and its consumer group. ``python manage.py
consume <name>`` runs one; ``manage.py topics`` creates each one's dead-letter topic.

A *handler* consumer (``handler``) is applied event by event, once per event id, by
``events.runner.ConsumerRunner`` on ``topics``. A *step* consumer (``step``) is a factory
``(bus, events.streaming.ConsumerOptions) -> events.streaming.BatchStep`` that owns its batch
(the stream processor, the scorer): it declares its own topics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from events.contracts import TOPICS, Event


@dataclass(frozen=True)
class ConsumerSpec:
    name: str
    handler: str | None = None
    topics: tuple[str, ...] = ()
    batch_size: int = 500
    step: str | None = None
    description: str = ""
    # Optional: a function applying a batch of new events at once, in the runner's transaction
    # with their claims (``events.runner``); ``handler`` stays the path of a batch that failed.
    batch_handler: str | None = None

    @property
    def group(self) -> str:
        return self.name

    def load_handler(self) -> Callable[[Event], None]:
        if self.handler is None:
            raise TypeError(f"{self.name} is a step consumer ({self.step}), not a handler")
        return _load(self.handler)

    def load_batch_handler(self) -> Callable[[list[Event]], None] | None:
        return None if self.batch_handler is None else _load(self.batch_handler)

    def load_step(self) -> Callable[..., Any]:
        """Return the step factory, ``(bus, events.streaming.ConsumerOptions) -> BatchStep``."""
        if self.step is None:
            raise TypeError(f"{self.name} is a handler consumer ({self.handler}), not a step")
        return _load(self.step)


def _load(path: str) -> Any:
    """Return the object at dotted ``path`` (``module.attribute``), imported only now."""
    module, _, attribute = path.rpartition(".")
    return getattr(import_module(module), attribute)


CONSUMERS: dict[str, ConsumerSpec] = {
    spec.name: spec
    for spec in (
        ConsumerSpec(
            name="event-ledger",
            handler="events.ledger.handle_event",
            batch_handler="events.ledger.handle_events",
            topics=tuple(TOPICS),
            description="records every event on the stream once (reconciliation)",
        ),
        ConsumerSpec(
            name="booking-verdicts",
            handler="rideshare.handlers.handle_event",
            topics=("fraud.scored.v1", "reviews.decided.v1"),
            description="acts on fraud verdicts: declines cancel trips, reviews hold captures",
        ),
        ConsumerSpec(
            name="label-intake",
            handler="ml.handlers.handle_event",
            topics=("labels.chargeback_filed.v1", "reviews.decided.v1"),
            description="one label per payment from chargebacks and analysts' decisions",
        ),
        ConsumerSpec(
            name="stream-features",
            step="features.processor.step.consumer_build",
            description="the stream feature views into the online store and offline history",
        ),
        ConsumerSpec(
            name="fraud-scorer",
            step="fraud.scorer.step.consumer_build",
            description="scores authorized payments: features, model, decision, verdict",
        ),
        ConsumerSpec(
            name="fraud-capture-scorer",
            step="fraud.scorer.step.capture_consumer_build",
            description="scores fares at the trip's end with the driver: capture, hold or void",
        ),
    )
}


def consumer_spec(name: str) -> ConsumerSpec:
    """Return the registered consumer ``name`` or fail listing the known ones."""
    try:
        return CONSUMERS[name]
    except KeyError:
        known = ", ".join(sorted(CONSUMERS))
        raise KeyError(f"no consumer named {name!r}; registered: {known}") from None
