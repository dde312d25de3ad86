"""The bus contract: the same semantics from Kafka and from the embedded durable log."""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from events.backends.kafka import LINGER_MS, KafkaBus
from events.bus import Bus, Record
from tests.events.bus_helpers import drain, numbered, values_by_key


def test_publish_acknowledges_every_record_and_keeps_order_per_key(bus: Bus, new_topic, group):
    topic = new_topic("order", partitions=3)
    records = [Record(topic, f"{key}:{i}".encode(), key=key) for i in range(30) for key in "abc"]
    producer = bus.producer()

    results = producer.publish(records)
    producer.close()

    assert results == [None] * 90
    consumer = bus.consumer(group=group, topics=[topic])
    received = drain(consumer, 90)
    consumer.close()
    assert len(received) == 90
    assert values_by_key(received, "abc") == numbered("abc", 30)
    for key in "abc":
        assert len({m.partition for m in received if m.key == key}) == 1
    assert sum(bus.end_offsets(topic).values()) == 90


# ``linger_ms=0``: the scorer's producer, which sends each batch's verdicts whole.
@pytest.mark.parametrize("linger_ms", [None, 0])
def test_sends_not_waited_for_are_acknowledged_in_order_when_their_result_is_asked(
    bus: Bus, new_topic, group, linger_ms
):
    topic = new_topic("send", partitions=2)
    producer = bus.producer(linger_ms=linger_ms)
    if isinstance(bus, KafkaBus):
        assert producer.settings["linger.ms"] == (LINGER_MS if linger_ms is None else 0)

    sendings = [
        producer.send([Record(topic, f"{key}:{i}".encode(), key=key) for key in "ab"])
        for i in range(20)
    ]
    results = [s.result(timeout=10) for s in sendings]
    producer.close()

    assert results == [[None, None]] * 20
    assert [len(s.records) for s in sendings] == [2] * 20
    consumer = bus.consumer(group=group, topics=[topic])
    received = drain(consumer, 40)
    consumer.close()
    assert values_by_key(received, "ab") == numbered("ab", 20)


def test_a_producer_shared_by_threads_stores_every_send(bus: Bus, new_topic, group):
    topic = new_topic("shared", partitions=2)
    producer = bus.producer()

    def sends(key: str) -> list[list[Exception | None]]:
        return [
            producer.send([Record(topic, f"{key}:{i}".encode(), key=key)]).result(timeout=10)
            for i in range(25)
        ]

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(sends, "abcd"))
    producer.close()

    assert results == [[[None]] * 25] * 4
    consumer = bus.consumer(group=group, topics=[topic])
    received = drain(consumer, 100)
    consumer.close()
    assert values_by_key(received, "abcd") == numbered("abcd", 25)
    assert sum(bus.end_offsets(topic).values()) == 100


def test_headers_and_values_round_trip_byte_for_byte(bus: Bus, new_topic, group):
    topic = new_topic("bytes")
    value = bytes(range(256))
    producer = bus.producer()
    assert producer.publish(
        [Record(topic, value, key="k", headers=(("event_id", b"\x00\xff id"),))]
    ) == [None]
    producer.close()

    consumer = bus.consumer(group=group, topics=[topic])
    (message,) = drain(consumer, 1)
    consumer.close()

    assert message.value == value
    assert message.key == "k"
    assert message.header("event_id") == b"\x00\xff id"
    assert message.offset == 0


def test_group_resumes_after_its_committed_offset(bus: Bus, new_topic, group):
    topic = new_topic("resume")
    producer = bus.producer()
    producer.publish([Record(topic, str(i).encode(), key="k") for i in range(10)])
    producer.close()

    first = bus.consumer(group=group, topics=[topic])
    batch = drain(first, 10)
    first.commit(batch[:4])
    first.close()
    assert bus.committed(group, topic) == {0: 4}

    second = bus.consumer(group=group, topics=[topic])
    rest = drain(second, 6)
    second.close()
    assert [m.value for m in rest] == [str(i).encode() for i in range(4, 10)]


def test_commits_not_waited_for_land_in_order_by_the_time_the_member_leaves(
    bus: Bus, new_topic, group
):
    topic = new_topic("commit-async")
    producer = bus.producer()
    producer.publish([Record(topic, str(i).encode(), key="k") for i in range(30)])
    producer.close()

    first = bus.consumer(group=group, topics=[topic])
    batch = drain(first, 30)
    for end in range(3, 21, 3):
        first.commit(batch[:end], wait=False)
    first.close()

    assert bus.committed(group, topic) == {0: 18}
    second = bus.consumer(group=group, topics=[topic])
    rest = drain(second, 12)
    second.close()
    assert [m.value for m in rest] == [str(i).encode() for i in range(18, 30)]


def test_uncommitted_records_are_delivered_again(bus: Bus, new_topic, group):
    topic = new_topic("redeliver")
    producer = bus.producer()
    producer.publish([Record(topic, str(i).encode()) for i in range(5)])
    producer.close()

    crashed = bus.consumer(group=group, topics=[topic])
    assert len(drain(crashed, 5)) == 5
    crashed.close()  # no commit: as if the process died mid-batch

    again = bus.consumer(group=group, topics=[topic])
    redelivered = drain(again, 5)
    again.close()
    assert sorted(m.value for m in redelivered) == [str(i).encode() for i in range(5)]


def test_each_group_reads_the_whole_topic_independently(bus: Bus, new_topic, group):
    topic = new_topic("groups", partitions=2)
    producer = bus.producer()
    producer.publish([Record(topic, str(i).encode(), key=str(i)) for i in range(20)])
    producer.close()

    for name in (f"{group}-a", f"{group}-b"):
        consumer = bus.consumer(group=name, topics=[topic])
        assert len(drain(consumer, 20)) == 20
        consumer.close()


def test_two_members_of_a_group_split_the_partitions(bus: Bus, new_topic, group):
    topic = new_topic("split", partitions=4)
    one = bus.consumer(group=group, topics=[topic])
    two = bus.consumer(group=group, topics=[topic])
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        one.poll(timeout=0.2)
        two.poll(timeout=0.2)
        a, b = one.assignment(), two.assignment()
        if a and b and len(a | b) == 4:
            break
    one.close()
    two.close()

    assert a.isdisjoint(b)
    assert a | b == {(topic, p) for p in range(4)}


def test_end_offsets_count_records_per_partition(bus: Bus, new_topic):
    topic = new_topic("ends", partitions=2)
    producer = bus.producer()
    producer.publish([Record(topic, b"x", key="same") for _ in range(7)])
    producer.close()

    ends = bus.end_offsets(topic)

    assert sorted(ends.values()) == [0, 7]
