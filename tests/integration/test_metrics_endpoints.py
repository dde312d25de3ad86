"""Every long-running process serves its Prometheus metrics, and they move: the relay, the
stream processor, the scorer and a Celery worker (with beat) on ``METRICS_PORT``, the web app
(Daphne) at ``/metrics``, on real Kafka, Redis and PostgreSQL. Scraped once the processes are
up and again after payments, a poison record and outbox events went through them."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import transaction

from devservices.base import free_port
from events.backends.kafka import KafkaBus
from events.bus import Record
from events.contracts import PaymentAuthorized, topic_name
from events.outbox import outbox_publish
from fraud.models import FraudScore
from tests.events.factories import trip_requested
from tests.features.streams import applied_config
from tests.fraud.factories import model_deploy, payment
from tests.kafka_namespaces import kafka_namespace
from tests.polling import wait_for
from tests.processes import (
    ROOT,
    database_env,
    features_env,
    manage_env,
    manage_start,
    manage_stop,
    redis_database,
)
from tests.scrape import answers, samples, scrape

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

BROKER_DB = 9
PAYMENTS = 300


@pytest.fixture
def namespace(kafka_bootstrap) -> Iterator[str]:
    with kafka_namespace(kafka_bootstrap, [PaymentAuthorized.topic], partitions=2) as name:
        yield name


def _popen(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=env, stdout=out, stderr=out)


def _lags(url: str, consumer: str) -> dict[str, float]:
    """Return the lag per partition ``consumer`` tells at ``url``."""
    return {
        dict(labels)["partition"]: value
        for (name, labels), value in samples(scrape(url)).items()
        if name == "stream_consumer_lag_records" and dict(labels)["consumer"] == consumer
    }


def _total(figures: dict, name: str, **labels: str) -> float:
    """Return the sum of ``name``'s samples whose labels include ``labels``."""
    return sum(
        value
        for (sample, found), value in figures.items()
        if sample == name and set(labels.items()) <= set(found)
    )


def test_every_process_serves_its_metrics_and_they_move(
    kafka_bootstrap, redis_url, namespace, tmp_path
):
    config = applied_config(tmp_path / "store", online="redis", redis_url=redis_url)
    model_deploy(tmp_path, version="champ", review=0.5, decline=0.999)
    ports = {name: free_port() for name in ("relay", "features", "scorer", "worker", "web")}
    with redis_database(redis_url, BROKER_DB) as broker:
        base = manage_env(
            **database_env(),
            **features_env(config),
            VAR_DIR=str(tmp_path / "var"),
            EVENT_BUS="kafka",
            KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
            CELERY_BROKER_URL=broker,
            FRAUD_FEATURE_TIMEOUT_MS="5000",
            # A beat task every two seconds gives the worker something to count.
            FRAUD_RESCORE_EVERY_SECONDS="2",
            LOG_LEVEL="INFO",
        )
        ns = ["--topic-namespace", namespace]
        logs = {name: tmp_path / f"{name}.log" for name in ports}

        def env(name: str) -> dict[str, str]:
            return {**base, "METRICS_PORT": str(ports[name])}

        processes = {
            "relay": manage_start(["relay"], env("relay"), logs["relay"]),
            "features": manage_start(
                ["consume", "stream-features", *ns, "--group", f"{namespace}-features"],
                env("features"),
                logs["features"],
            ),
            "scorer": manage_start(
                ["consume", "fraud-scorer", *ns, "--group", f"{namespace}-scorer"],
                env("scorer"),
                logs["scorer"],
            ),
            "worker": _popen(
                [
                    "-m",
                    "celery",
                    "-A",
                    "config",
                    "worker",
                    "-B",
                    "-Q",
                    "default",
                    "--pool",
                    "solo",
                    "--without-heartbeat",
                    "--without-gossip",
                    "--without-mingle",
                ],
                env("worker"),
                logs["worker"],
            ),
            "web": _popen(
                [
                    "-m",
                    "daphne",
                    "-b",
                    "127.0.0.1",
                    "-p",
                    str(ports["web"]),
                    "config.asgi:application",
                ],
                {**base, "DJANGO_ALLOWED_HOSTS": "127.0.0.1"},
                logs["web"],
            ),
        }
        urls = {name: f"http://127.0.0.1:{port}/metrics" for name, port in ports.items()}
        try:
            for name, url in urls.items():
                assert wait_for(lambda url=url: answers(url), 120, 0.5), (
                    f"{name} serves no metrics at {url}:\n{logs[name].read_text()[-3000:]}"
                )
            before = {name: samples(scrape(url)) for name, url in urls.items()}

            bus = KafkaBus(bootstrap_servers=kafka_bootstrap)
            producer = bus.producer()
            topic = topic_name(namespace, PaymentAuthorized.topic)
            records = [
                Record(topic, e.encode(), key=e.key())
                for e in (payment(card_id=f"card-{i % 40}") for i in range(PAYMENTS))
            ]
            records.append(Record(topic, b"\xff not an event", key="poison"))
            assert producer.publish(records) == [None] * len(records)
            producer.close()
            with transaction.atomic():
                for _ in range(5):
                    outbox_publish(trip_requested())

            scored = FraudScore.objects.filter(model_version="champ")
            assert wait_for(lambda: scored.count() == PAYMENTS, 120, 0.2), logs[
                "scorer"
            ].read_text()[-3000:]
            # The worker ran at least one beat task since the first scrape; the lag was read.
            assert wait_for(
                lambda: (
                    _total(samples(scrape(urls["worker"])), "celery_task_seconds_count")
                    > _total(before["worker"], "celery_task_seconds_count")
                ),
                60,
                0.5,
            ), logs["worker"].read_text()[-3000:]
            assert wait_for(
                lambda: _total(samples(scrape(urls["relay"])), "relay_published_events_total") >= 5,
                60,
                0.5,
            ), logs["relay"].read_text()[-3000:]
            # Both partitions' lag, read every few seconds, falls to nothing.
            assert wait_for(lambda: _lags(urls["scorer"], "fraud-scorer") == {"0": 0, "1": 0}, 30)
            after = {name: samples(scrape(url)) for name, url in urls.items()}
        finally:
            for name, process in processes.items():
                manage_stop(process, logs[name])

    scorer, before_scorer = after["scorer"], before["scorer"]
    assert _total(scorer, "stream_consumer_records_total", consumer="fraud-scorer") == (
        PAYMENTS + 1
    )
    assert _total(scorer, "fraud_decisions_total", checkpoint="authorization", model="champ") == (
        PAYMENTS
    )
    assert _total(scorer, "fraud_scoring_latency_seconds_count", checkpoint="authorization") == (
        PAYMENTS
    )
    assert _total(scorer, "fraud_vectors_total") == PAYMENTS
    assert _total(scorer, "stream_dead_letters_total", consumer="fraud-scorer") == 1
    assert _total(
        scorer, "stream_consumer_stage_seconds_count", consumer="fraud-scorer", stage="read"
    ) > _total(before_scorer, "stream_consumer_stage_seconds_count", stage="read")
    assert _total(scorer, "stream_consumer_batch_records_count", consumer="fraud-scorer") >= 1

    features = after["features"]
    assert _total(features, "stream_consumer_records_total", consumer="stream-features") == (
        PAYMENTS + 1
    )
    assert _total(features, "feature_freshness_seconds_count", topic=topic) == PAYMENTS
    assert _total(features, "stream_dead_letters_total", consumer="stream-features") == 1

    assert _total(after["relay"], "relay_published_events_total") >= 5
    assert _total(after["worker"], "celery_task_seconds_count", outcome="success") >= 1
    web = after["web"]
    assert ("outbox_backlog_events", ()) in web
    for name in ports:
        assert _total(after[name], "process_cpu_seconds_total") > _total(
            before[name], "process_cpu_seconds_total"
        ), f"{name}'s process figures did not move"
