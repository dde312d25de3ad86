import uuid
from collections.abc import Callable

import pytest

from events.backends.embedded import EmbeddedBus
from events.backends.kafka import KafkaBus
from events.bus import Bus


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def bus(request, tmp_path) -> Bus:
    """Each bus backend in turn: the contract suite runs against both."""
    if request.param == "kafka":
        return KafkaBus(bootstrap_servers=request.getfixturevalue("kafka_bootstrap"), timeout_s=10)
    return EmbeddedBus(tmp_path / "event-log.sqlite3")


@pytest.fixture
def new_topic(bus: Bus, request) -> Callable[..., str]:
    """Return a factory of topics that exist for this test only, on ``bus``."""
    if isinstance(bus, KafkaBus):
        return request.getfixturevalue("kafka_topic")

    def create(stem: str = "t", partitions: int = 1) -> str:
        name = f"test-{uuid.uuid4().hex[:10]}.{stem}"
        bus.ensure_topics([name], partitions=partitions)
        return name

    return create


@pytest.fixture
def group() -> str:
    return f"test-group-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def embedded_bus(tmp_path) -> EmbeddedBus:
    return EmbeddedBus(tmp_path / "event-log.sqlite3")
