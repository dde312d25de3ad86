"""The stream processor's settings (``FEATURES_*``)."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class ProcessorSettings:
    """How the stream processor batches and writes (``FEATURES_*`` settings)."""

    max_records: int = 1000
    poll_timeout_s: float = 0.05
    log_every_s: float = 10.0
    # Partitions of the dead-letter topic the processor creates.
    dead_letter_partitions: int = 3
    # How long the bus may hold a fetch to fill a batch (``Bus.consumer``; None: its default):
    # a batch costs round trips and files whatever its size, so bigger ones cost less per event.
    batch_wait_ms: int | None = None
    # How long a batch's offline files may wait for the next batches' (0: none).
    offline_flush_s: float = 0.0

    @classmethod
    def from_settings(cls, **overrides) -> ProcessorSettings:
        from django.conf import settings

        base = cls(
            dead_letter_partitions=settings.EVENT_TOPIC_PARTITIONS,
            batch_wait_ms=settings.FEATURES_BATCH_WAIT_MS,
            offline_flush_s=settings.FEATURES_OFFLINE_FLUSH_SECONDS,
        )
        return replace(base, **overrides)
