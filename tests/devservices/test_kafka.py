import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from devservices import kafka as kafka_service

pytestmark = pytest.mark.kafka


def test_produce_and_consume_round_trip(kafka_bootstrap, kafka_topic):
    topic = kafka_topic("smoke", partitions=3)
    producer = KafkaProducer(
        bootstrap_servers=kafka_bootstrap,
        acks="all",
        enable_idempotence=True,
        bootstrap_timeout_ms=10_000,
    )
    sent = [
        producer.send(topic, key=key.encode(), value=f"payment {i}".encode()).get(timeout=10)
        for i, key in enumerate(["card-1", "card-2", "card-1", "card-3"])
    ]
    producer.close()

    group = f"{topic}.group"
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        bootstrap_timeout_ms=10_000,
    )
    received = []
    deadline = time.monotonic() + 30
    while len(received) < 4 and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            received.extend(records)
    consumer.commit()
    consumer.close()

    assert sorted(r.value for r in received) == [
        b"payment 0",
        b"payment 1",
        b"payment 2",
        b"payment 3",
    ]
    # Kafka keeps one key on one partition, which the fraud pipeline's per-card ordering relies on.
    card_1 = {r.partition for r in received if r.key == b"card-1"}
    assert len(card_1) == 1
    assert sent[0].partition == sent[2].partition

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    offsets = admin.list_group_offsets(group)[group]
    admin.close()
    committed = {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}
    per_partition = {p: sum(1 for r in received if r.partition == p) for p in range(3)}
    assert {p: committed.get(p, 0) for p in range(3)} == per_partition


def test_topic_seen_by_admin_api_and_by_the_brokers_own_tool(kafka_bootstrap, kafka_topic):
    topic = kafka_topic("listed", partitions=2)

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    assert topic in admin.list_topics()
    admin.close()

    listed = kafka_service.run_tool("kafka-topics", "--bootstrap-server", kafka_bootstrap, "--list")
    assert listed.returncode == 0, listed.stderr
    assert topic in listed.stdout.split()

    described = kafka_service.run_tool(
        "kafka-topics", "--bootstrap-server", kafka_bootstrap, "--describe", "--topic", topic
    )
    assert described.returncode == 0, described.stderr
    assert "PartitionCount: 2" in described.stdout


def test_consumer_resumes_from_committed_offset(kafka_bootstrap, kafka_topic):
    topic = kafka_topic("resume")
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for i in range(5):
        producer.send(topic, value=str(i).encode())
    producer.flush()
    producer.close()
    partition = TopicPartition(topic, 0)
    group = f"{topic}.group"

    def consume(max_records: int) -> list[bytes]:
        consumer = KafkaConsumer(
            bootstrap_servers=kafka_bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        consumer.assign([partition])
        values: list[bytes] = []
        deadline = time.monotonic() + 20
        while len(values) < max_records and time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=500, max_records=max_records - len(values))
            for records in batch.values():
                values.extend(r.value for r in records)
        consumer.commit()
        consumer.close()
        return values

    assert consume(2) == [b"0", b"1"]
    assert consume(3) == [b"2", b"3", b"4"]


def test_server_properties_is_a_single_node_kraft_config(tmp_path):
    text = kafka_service.server_properties(port=19092, controller_port=19093, data_dir=tmp_path)
    config = dict(line.split("=", 1) for line in text.splitlines() if line)
    assert config["process.roles"] == "broker,controller"
    assert config["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert config["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert config["log.dirs"] == str(tmp_path)
    assert config["offsets.topic.replication.factor"] == "1"
    # Threads for two shared cores, not a server's defaults (3 network, 8 request handlers).
    assert (config["num.network.threads"], config["num.io.threads"]) == ("1", "2")


def test_unknown_tool_is_refused():
    with pytest.raises(ValueError, match="unknown Kafka tool 'kafka-nope'"):
        kafka_service.run_tool("kafka-nope")
