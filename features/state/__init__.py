"""The stream processor's window state: the interface and what it keeps (``base``), on Redis
(``redis``) or in SQLite (``sqlite``)."""

from features.state.base import (
    MARKS_KEPT,
    Added,
    Applied,
    EntityRef,
    EntityRows,
    Evaluated,
    Marks,
    Retention,
    ServeRead,
    WindowState,
    evaluated_at,
    retention,
)
from features.state.redis import UNAVAILABLE, RedisState
from features.state.sqlite import SqliteState

__all__ = [
    "MARKS_KEPT",
    "UNAVAILABLE",
    "Added",
    "Applied",
    "EntityRef",
    "EntityRows",
    "Evaluated",
    "Marks",
    "RedisState",
    "Retention",
    "ServeRead",
    "SqliteState",
    "WindowState",
    "evaluated_at",
    "retention",
]
