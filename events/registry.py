"""Every stream consumer, by name: its handler (a dotted path, imported only when run), its
topics and its consumer group. ``python manage.py consume <name>`` runs one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module

from events.contracts import TOPICS, Event


@dataclass(frozen=True)
class ConsumerSpec:
    name: str
    handler: str
    topics: tuple[str, ...]
    batch_size: int = 500

    @property
    def group(self) -> str:
        return self.name

    def load_handler(self) -> Callable[[Event], None]:
        module, _, attribute = self.handler.rpartition(".")
        return getattr(import_module(module), attribute)


CONSUMERS: dict[str, ConsumerSpec] = {
    spec.name: spec
    for spec in (
        ConsumerSpec(
            name="event-ledger",
            handler="events.ledger.handle_event",
            topics=tuple(TOPICS),
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
