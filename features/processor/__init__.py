"""The stream processor: the stream views computed incrementally from the event stream (the
step, ``features.processor.step``), written to the online store (``online``) and the offline
history (``offline``), with each partition's lateness marks (``marks``); how it batches and
writes is its ``settings``."""

from features.processor.online import OnlineWriter
from features.processor.settings import ProcessorSettings
from features.processor.step import (
    CONSUMER,
    DEFAULT_GROUP,
    OFFLINE_MAX_BATCHES,
    StreamProcessor,
    state_from_config,
)

__all__ = [
    "CONSUMER",
    "DEFAULT_GROUP",
    "OFFLINE_MAX_BATCHES",
    "OnlineWriter",
    "ProcessorSettings",
    "StreamProcessor",
    "state_from_config",
]
