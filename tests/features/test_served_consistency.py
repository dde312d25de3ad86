"""Served vs offline (``features.consistency.served_consistency_run``, ``manage.py
feature_consistency --served``): each logged vector against the training-set row of the same
request. A vector read before the stream processor applied its own payment is found and
measured; vectors read after it match; a degraded one is set aside; the vectors are counted by
what the server said of them (exact, stale), and only an exact one that differs fails."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command

from features.consistency import last_served_report, served_consistency_run
from features.metrics import metrics
from features.processor import StreamProcessor, state_from_config
from features.serving import online_vector
from fraud.feature_log import LoggedVector, feature_log_write
from fraud.scoring import unserved_vector
from tests.features.stores import applied_store
from tests.features.streams import messages_for
from tests.fraud.factories import NOW, payment
from tests.scrape import sample

SERVICE = "fraud_scoring_v1"


@pytest.fixture
def config(tmp_path):
    yield from applied_store(tmp_path)


def _logged(event, vector, consistency: str = "exact", lag_ms: float | None = None):
    vector = replace(vector, consistency=consistency, lag_ms=lag_ms)
    return LoggedVector(
        event_id=str(event.event_id),
        request_time=event.occurred_at,
        model_version="v1",
        role="champion",
        vector=vector,
        request=event.model_dump(mode="json"),
    )


@pytest.fixture
def served(config):
    """Four payments of one card a minute apart, served as a scorer racing the processor
    would: the first after the processor applied it, the second before (it misses itself;
    marked exact nonetheless, as a buggy server would), the third after (marked stale, as a
    server that gave up waiting would), the fourth degraded (the store did not answer).
    Return them in order."""
    processor = StreamProcessor(
        bus=None, config=config, state=state_from_config(config), namespace="t"
    )
    payments = [
        payment(card_id="c1", amount_cents=1000 * (i + 1), occurred_at=NOW + timedelta(minutes=i))
        for i in range(4)
    ]
    requests = [p.model_dump(mode="json") for p in payments]
    entries = []
    processor.process_batch(messages_for([payments[0]], namespace="t"))
    entries.append(_logged(payments[0], online_vector(config, requests[:1])[0]))
    entries.append(_logged(payments[1], online_vector(config, requests[1:2])[0]))
    processor.process_batch(messages_for(payments[1:3], namespace="t"))
    entries.append(
        _logged(payments[2], online_vector(config, requests[2:3])[0], "stale", lag_ms=1500.0)
    )
    entries.append(_logged(payments[3], unserved_vector(requests[3], SERVICE), "stale"))
    processor.process_batch(messages_for(payments[3:], namespace="t"))
    processor.state.close()
    feature_log_write(config, entries)
    return payments


def test_the_vector_served_before_its_payment_was_applied_is_the_one_that_differs(config, served):
    report = served_consistency_run(config)

    assert (report.vectors, report.degraded, report.compared) == (4, 1, 3)
    assert report.mismatched_vectors == 1
    assert (report.exact, report.exact_mismatched, report.stale, report.stale_mismatched) == (
        2, 1, 1, 0
    )  # fmt: skip
    assert (report.unmarked, report.stale_lag_p99_ms) == (0, 1500.0)
    by_name = {f.name: f for f in report.features}
    velocity = by_name["card_payments_1h"]
    # Served 1 (the first payment only) where its training row counts 2 (itself included).
    assert (velocity.compared, velocity.mismatches, velocity.missing, velocity.extra) == (
        3,
        1,
        0,
        0,
    )
    assert velocity.smape == pytest.approx((1 / 1.5) / 3)
    amount = by_name["card_amount_cents_1h"]
    assert amount.mismatches == 1
    assert amount.smape == pytest.approx((2000 / 2000) / 3)  # 1000 served, 3000 offline
    assert {e["event_id"] for e in report.examples} == {str(served[1].event_id)}
    example = next(e for e in report.examples if e["feature"] == "card_payments_1h")
    assert (example["served"], example["offline"], example["consistency"]) == (1, 2, "exact")
    # Features no event of this stream feeds are null on both sides: never a mismatch.
    assert by_name["rider_trips_24h"].mismatches == 0
    saved = last_served_report(config)
    assert saved is not None
    assert (saved.mismatched_vectors, saved.exact_mismatched, saved.stale) == (1, 1, 1)
    stored = {f["name"]: f for f in json.loads(saved.to_json())["features"]}
    assert stored["card_payments_1h"]["mismatch_rate"] == pytest.approx(1 / 3)


def test_since_and_limit_choose_the_vectors_compared(config, served):
    later = served_consistency_run(config, since=served[2].occurred_at)
    assert (later.vectors, later.degraded, later.mismatched_vectors) == (2, 1, 0)

    sample = served_consistency_run(config, limit=2, seed=1)
    again = served_consistency_run(config, limit=2, seed=1)
    assert sample.vectors == again.vectors == 2
    assert sample.examples == again.examples
    assert served_consistency_run(config, limit=10).vectors == 4


@pytest.fixture
def feature_settings(settings, config):
    settings.FEAST_PROJECT = config.project
    settings.FEAST_REGISTRY = config.registry_url
    settings.FEATURES_ONLINE_STORE = "sqlite"
    settings.FEATURES_DATA_DIR = str(config.data_dir)
    return config


def test_the_command_prints_the_report_and_fails_on_a_mismatch_when_asked(feature_settings, served):
    out = io.StringIO()
    call_command("feature_consistency", "--served", stdout=out)

    lines = out.getvalue().splitlines()
    assert lines[0] == (
        "served vectors: 4 (1 degraded, set aside); 1 of 3 differ from their training row (33.3%)"
    )
    assert lines[1] == (
        "exact: 2, 1 differ; stale: 1 (33.33%), 0 differ, lag p99 1500 ms; unmarked: 0"
    )
    assert lines[2].split() == ["feature", "mismatch", "missing", "extra", "SMAPE"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[3:] if not line.startswith("mis")}
    assert rows["card_payments_1h"] == ["0.3333", "0.0000", "0.0000", "0.2222"]
    assert rows["rider_trips_24h"][0] == "0.0000"
    # The most mismatched features first.
    assert float(lines[3].split()[1]) == max(float(r[0]) for r in rows.values())
    with pytest.raises(CommandError, match="1 served vectors marked exact differ"):
        call_command("feature_consistency", "--served", "--fail-on-mismatch", stdout=io.StringIO())
    since = served[2].occurred_at.isoformat()
    call_command(
        "feature_consistency", "--served", "--since", since, "--fail-on-mismatch", stdout=out
    )
    with pytest.raises(CommandError, match="--since takes an ISO date-time or a span like 6h"):
        call_command("feature_consistency", "--served", "--since", "yesterday")


def test_a_stale_vector_that_differs_does_not_fail_the_command(feature_settings, tmp_path):
    config = feature_settings
    processor = StreamProcessor(
        bus=None, config=config, state=state_from_config(config), namespace="t"
    )
    early = payment(card_id="c2", occurred_at=NOW)
    request = early.model_dump(mode="json")
    read_before = online_vector(config, [request])[0]  # the processor has not applied it
    processor.process_batch(messages_for([early], namespace="t"))
    processor.state.close()
    feature_log_write(config, [_logged(early, read_before, "stale", lag_ms=40.0)])

    out = io.StringIO()
    call_command("feature_consistency", "--served", "--fail-on-mismatch", stdout=out)

    report = last_served_report(config)
    assert (report.stale, report.stale_mismatched, report.exact) == (1, 1, 0)
    assert "stale: 1 (100.00%), 1 differ, lag p99 40 ms" in out.getvalue()


def test_the_last_served_report_is_exported_at_metrics_features(feature_settings, served, rf):
    served_consistency_run(feature_settings)

    text = metrics(rf.get("/metrics/features")).content.decode()

    assert sample(text, "feature_served_vectors") == 4
    assert sample(text, "feature_served_degraded") == 1
    assert sample(text, "feature_served_mismatched_share") == pytest.approx(1 / 3)
    assert sample(text, "feature_served_exact") == 2
    assert sample(text, "feature_served_exact_mismatched") == 1
    assert sample(text, "feature_served_stale_share") == pytest.approx(1 / 3)
    assert sample(
        text, "feature_served_mismatch_rate", feature="card_payments_1h"
    ) == pytest.approx(1 / 3)
    assert sample(text, "feature_served_mismatch_rate", feature="rider_trips_24h") == 0
    assert sample(text, "feature_served_smape", feature="card_payments_1h") == pytest.approx(2 / 9)
    assert "# TYPE feature_served_age_seconds gauge" in text
