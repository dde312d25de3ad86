"""Topics of the test Kafka broker for one test only: a namespace (``<namespace>.<topic>``, as
``--topic-namespace`` reads them), created before and deleted after."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Sequence

from events.backends.kafka import KafkaBus
from events.contracts import topic_name


@contextlib.contextmanager
def kafka_namespace(bootstrap: str, topics: Sequence[str], *, partitions: int) -> Iterator[str]:
    """Yield a new namespace whose ``topics`` exist with ``partitions`` each; delete every
    topic of the namespace afterwards (those its consumers created too)."""
    from kafka import KafkaAdminClient

    name = f"test-{uuid.uuid4().hex[:10]}"
    KafkaBus(bootstrap_servers=bootstrap).ensure_topics(
        [topic_name(name, t) for t in topics], partitions=partitions
    )
    try:
        yield name
    finally:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="tests")
        admin.delete_topics([t for t in admin.list_topics() if t.startswith(f"{name}.")])
        admin.close()


def group_members(bootstrap: str, group: str) -> int:
    """Return how many members of consumer group ``group`` own partitions now (0 while it is
    rebalancing)."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="tests")
    try:
        description = admin.describe_groups([group])[group]
    finally:
        admin.close()
    if description["group_state"] != "Stable":
        return 0
    return sum(1 for m in description["members"] if m["member_assignment"]["assigned_partitions"])
