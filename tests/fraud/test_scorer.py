"""The scorer's batch, in process on the embedded feature store and PostgreSQL: one score per
payment event whatever is redelivered, its verdict published on the bus, reviewed when it
should be, every served vector logged exactly as served."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pandas as pd
import pytest
from django.utils import timezone

from events.bus import BusError, Producer, Record, Sent
from features.processor import StreamProcessor, state_from_config
from features.served_log import logged_features
from fraud.models import FraudScore, ReviewItem, ShadowScore, UnloggedScore
from fraud.scorer import recording as scorer_module
from fraud.services import scored_event_id, scores_log_sweep, scores_record
from tests.features.stores import applied_store
from tests.fraud.factories import NOW, VELOCITY, model_deploy, payment
from tests.fraud.scorer_helpers import (
    NAMESPACE,
    batch,
    messages,
    models,
    payments_applied,
    published,
    scorer_make,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def config(tmp_path):
    yield from applied_store(tmp_path)


@pytest.fixture
def scorer(config, tmp_path):
    scorer = scorer_make(config, tmp_path)
    yield scorer
    scorer.reader.close()


@pytest.fixture
def flags(monkeypatch):
    pushed: list[list[int]] = []
    monkeypatch.setattr(
        scorer_module.FlagPusher, "push", lambda self, score_ids: pushed.append(list(score_ids))
    )
    return pushed


def test_a_batch_is_scored_recorded_published_reviewed_and_logged(config, scorer, tmp_path, flags):
    model_deploy(tmp_path, version="champ", review=0.5, decline=0.999)
    payments_applied(config, "card-burst", 8)  # the ninth is the payment scored
    burst, calm = payment(card_id="card-burst"), payment(card_id="card-calm")

    batch(scorer, [burst, calm])

    scores = {s.card_id: s for s in FraudScore.objects.all()}
    assert sorted(scores) == ["card-burst", "card-calm"]
    flagged, approved = scores["card-burst"], scores["card-calm"]
    assert (flagged.decision, approved.decision) == ("review", "approve")
    assert flagged.event_id == burst.event_id
    assert (flagged.model_version, flagged.role) == ("champ", "champion")
    assert flagged.reasons[0]["text"] == "9 payments on this card in the last 10 minutes"
    assert approved.reasons == []
    assert flagged.degraded is False
    assert flagged.degraded_features == []
    assert (flagged.logged, approved.logged) == (True, True)
    assert list(ReviewItem.objects.values_list("score_id", "status")) == [(flagged.id, "open")]
    # What the case page shows of where the payment came from.
    assert ReviewItem.objects.values(
        "device_id", "ip", "card_brand", "card_last4", "rider_lat", "rider_lng", "pickup_lat",
        "dropoff_lng",
    ).get() == {
        "device_id": "dev-1", "ip": "127.0.0.1", "card_brand": "Visa", "card_last4": "4242",
        "rider_lat": 52.37, "rider_lng": 4.89, "pickup_lat": 52.33, "dropoff_lng": 4.935,
    }  # fmt: skip
    assert flags == [[flagged.id]]

    verdicts = {e.card_id: e for e in published(scorer.bus, "t.fraud.scored.v1")}
    assert sorted(verdicts) == ["card-burst", "card-calm"]
    verdict = verdicts["card-burst"]
    assert verdict.event_id == scored_event_id(burst.event_id)
    assert (verdict.payment_event_id, verdict.payment_id) == (burst.event_id, burst.payment_id)
    assert (verdict.score, verdict.decision) == (flagged.score, "review")
    assert verdict.model_version == "champ"
    assert verdict.degraded is False
    assert [r.model_dump() for r in verdict.reasons] == [
        {"feature": r["feature"], "text": r["text"]} for r in flagged.reasons
    ]

    log = logged_features(config).set_index("event_id")
    assert sorted(log.index) == sorted([str(burst.event_id), str(calm.event_id)])
    row = log.loc[str(burst.event_id)]
    assert row[VELOCITY] == 9
    assert row[f"{VELOCITY}__status"] == "PRESENT"
    # The card's latest event at the payment's instant: the payment itself.
    assert row[f"{VELOCITY}__timestamp"] == burst.occurred_at
    assert row["consistency"] == "exact"
    assert row["consistency_lag_ms"] is pd.NA
    assert row["occurred_at"] == burst.occurred_at
    assert log.loc[str(calm.event_id), VELOCITY] == 1
    assert (flagged.consistency, approved.consistency) == ("exact", "exact")
    assert row["rider_trips_1h__status"] == "NOT_FOUND"  # a rider the store never saw
    assert (row["model_version"], row["role"], row["payment_id"]) == (
        "champ", "champion", burst.payment_id
    )  # fmt: skip
    assert row["card_id"] == "card-burst"
    assert row["hour_of_day"] == burst.occurred_at.hour


def test_a_redelivered_batch_changes_nothing(config, scorer, tmp_path, flags):
    model_deploy(tmp_path, version="champ")
    events = [payment(card_id=f"card-{i}") for i in range(5)]
    batch(scorer, events)
    before = list(FraudScore.objects.order_by("id").values())
    log_files = sorted(config.logs_dir.rglob("*.parquet"))

    batch(scorer, events)  # a redelivery, whole
    batch(scorer, [events[2], events[2], events[4]])  # and a duplicate within one batch

    assert list(FraudScore.objects.order_by("id").values()) == before
    assert len(published(scorer.bus, "t.fraud.scored.v1")) == 5
    assert sorted(config.logs_dir.rglob("*.parquet")) == log_files
    assert len(logged_features(config)) == 5
    assert scorer.stats.scored == 5
    assert scorer.stats.duplicates == 8


def test_scores_committed_but_not_logged_are_logged_on_replay_as_served(config, scorer, tmp_path):
    model_deploy(tmp_path, version="champ")
    payments_applied(config, "card-1", 2)
    events = [payment(card_id="card-1"), payment(card_id="card-2")]
    # The crash: a batch's transaction committed, the process died before the log write.
    drafts = scorer._score(events, scorer.watcher.current())
    scores_record(drafts=drafts)
    assert UnloggedScore.objects.count() == 2
    payments_applied(config, "card-1", 5)  # the state moves on before the replay

    batch(scorer, events)

    assert UnloggedScore.objects.count() == 0
    # The crash may have come before the events went out: they are sent now, as scored.
    verdicts = published(scorer.bus, "t.fraud.scored.v1")
    assert sorted(v.payment_event_id for v in verdicts) == sorted(e.event_id for e in events)
    by_payment = {s.event_id: s for s in FraudScore.objects.all()}
    assert all(v.score == by_payment[v.payment_event_id].score for v in verdicts)
    log = logged_features(config).set_index("event_id")
    assert log.loc[str(events[0].event_id), VELOCITY] == 2  # what was served, not re-read


def test_a_score_is_left_to_log_once_whatever_records_it_again(config, scorer, tmp_path):
    model_deploy(tmp_path, version="champ")
    events = [payment(card_id="card-1"), payment(card_id="card-2")]
    drafts = scorer._score(events, scorer.watcher.current())

    first = scores_record(drafts=drafts)
    again = scores_record(drafts=drafts)

    assert (len(first.score_ids), again.score_ids) == (2, {})
    unlogged = UnloggedScore.objects.values_list("score_id", flat=True)
    assert sorted(unlogged) == sorted(first.score_ids.values())


class Refusing(Producer):
    """A bus that refuses every record (a test double for a broker gone away)."""

    def send(self, records):
        return Sent(records, [BusError("broker went away")] * len(records))


def test_a_refused_publish_leaves_scores_unlogged_and_the_sweep_finishes_them(
    config, scorer, tmp_path
):
    model_deploy(tmp_path, version="champ")
    events = [payment(card_id="card-1"), payment(card_id="card-2")]
    scorer.publisher._producer = Refusing()

    batch(scorer, events)  # recorded and logged, the events refused

    assert scorer.stats.publish_failures == 2
    assert UnloggedScore.objects.count() == 2
    assert published(scorer.bus, "t.fraud.scored.v1", wait_s=0.5) == []

    def sweep(producer, scored_before) -> int:
        return scores_log_sweep(
            config=config, producer=producer, topic="t.fraud.scored.v1",
            scored_before=scored_before,
        )  # fmt: skip

    producer = scorer.bus.producer()
    assert sweep(producer, timezone.now() - timedelta(hours=1)) == 0  # too recent
    with pytest.raises(BusError, match=r"2 fraud\.scored events not acknowledged"):
        sweep(Refusing(), timezone.now() + timedelta(seconds=1))
    assert UnloggedScore.objects.count() == 2
    assert sweep(producer, timezone.now() + timedelta(seconds=1)) == 2
    assert sweep(producer, timezone.now() + timedelta(seconds=1)) == 0

    verdicts = published(scorer.bus, "t.fraud.scored.v1")
    assert sorted(v.payment_event_id for v in verdicts) == sorted(e.event_id for e in events)
    # Logged by the batch and again by each sweep: its reader keeps one row per payment.
    assert sorted(logged_features(config)["event_id"]) == sorted(str(e.event_id) for e in events)


def test_poison_is_dead_lettered_and_the_rest_scored(config, scorer, tmp_path):
    model_deploy(tmp_path, version="champ")
    good = payment(card_id="card-1")
    poison = (payment(card_id="card-2"), b'{"not": "a payment"}')

    batch(scorer, [good, poison])

    assert list(FraudScore.objects.values_list("event_id", flat=True)) == [good.event_id]
    consumer = scorer.bus.consumer(group="check", topics=["t.deadletter.fraud-scorer"])
    dead = consumer.poll(timeout=1.0)
    consumer.close()
    assert [m.value for m in dead] == [b'{"not": "a payment"}']
    assert dead[0].header("dlq.topic") == b"t.payments.authorized.v1"
    assert dead[0].header("dlq.error").startswith(b"schema: ")


def test_shadows_score_every_event_and_a_canary_decides_its_share(config, scorer, tmp_path):
    model_deploy(tmp_path, version="champ")
    model_deploy(tmp_path, version="shadow", role="shadow", seed=1)
    model_deploy(tmp_path, version="canary", role="canary", canary_share=0.5, seed=2)
    # card-1's bucket is 0.456: the canary's; card-2's 0.711: the champion's.
    events = [payment(card_id="card-1"), payment(card_id="card-2")]

    batch(scorer, events)

    deciders = dict(FraudScore.objects.values_list("card_id", "model_version"))
    assert deciders == {"card-1": "canary", "card-2": "champ"}
    assert dict(FraudScore.objects.values_list("card_id", "role")) == {
        "card-1": "canary", "card-2": "champion"
    }  # fmt: skip
    shadows = set(ShadowScore.objects.values_list("event_id", "model_version"))
    assert shadows == {(events[0].event_id, "shadow"), (events[1].event_id, "shadow")}
    verdicts = published(scorer.bus, "t.fraud.scored.v1")
    assert {v.model_version for v in verdicts} == {"canary", "champ"}


def test_without_a_champion_run_reads_nothing(config, tmp_path):
    scorer = scorer_make(config, tmp_path, deployment_poll_s=0.05)
    producer = scorer.bus.producer()
    event = payment()
    producer.publish([Record(scorer.topic, event.encode(), key=event.key())])
    stats = scorer.run(max_seconds=1.0)
    assert (stats.events, stats.batches) == (0, 0)
    assert FraudScore.objects.count() == 0
    assert scorer.bus.committed(scorer.group, scorer.topic) == {}


def test_an_unknown_card_is_not_degraded(config, scorer, tmp_path):
    model_deploy(tmp_path, version="champ")
    event = payment(card_id=f"card-{uuid.uuid4().hex}", amount_cents=90_000)
    batch(scorer, [event])
    score = FraudScore.objects.get()
    assert (score.degraded, score.degraded_features, score.decision) == (False, [], "approve")


def test_from_the_stream_a_velocity_burst_raises_the_score_and_a_device_name_does_not(
    config, scorer, tmp_path
):
    """Behaviour through the whole path: events -> stream processor -> window state -> scorer,
    which counts the payment it scores too (card-c: eight before it, nine with it)."""
    model_deploy(tmp_path, version="champ", review=0.5, decline=0.999)
    start = NOW - timedelta(minutes=5)
    history = [
        *[payment(card_id="card-a", device_id="dev-a", occurred_at=start) for _ in range(2)],
        *[payment(card_id="card-b", device_id="device-zz-99", occurred_at=start)
          for _ in range(2)],
        *[payment(card_id="card-c", device_id="dev-c", occurred_at=start + timedelta(seconds=i))
          for i in range(8)],
    ]  # fmt: skip
    processor = StreamProcessor(bus=None, config=config, state=state_from_config(config),
                                namespace=NAMESPACE)  # fmt: skip
    processor.process_batch(messages(history))
    processor.state.close()
    at = start + timedelta(minutes=1)
    a = payment(card_id="card-a", device_id="dev-a", occurred_at=at)
    b = payment(card_id="card-b", device_id="device-zz-99", occurred_at=at)
    c = payment(card_id="card-c", device_id="dev-c", occurred_at=at)

    batch(scorer, [a, b, c])

    scores = dict(FraudScore.objects.values_list("card_id", "score"))
    assert scores["card-a"] == scores["card-b"] < 0.5 < scores["card-c"]
    burst = FraudScore.objects.get(card_id="card-c")
    assert burst.decision == "review"
    assert burst.reasons[0]["text"] == "9 payments on this card in the last 10 minutes"


def test_vectors_are_logged_and_offsets_committed_together_once_a_flush_is_due(config, tmp_path):
    model_deploy(tmp_path, version="champ")
    scorer = scorer_make(config, tmp_path, log_flush_s=3600.0, log_flush_rows=3)
    scorer.consumer = scorer.bus.consumer(group="g", topics=[scorer.topic])
    producer = scorer.bus.producer()
    events = [payment(card_id=f"card-{i}") for i in range(3)]
    producer.publish([Record(scorer.topic, e.encode(), key=e.key()) for e in events])
    polled = []
    while len(polled) < 3:
        polled += scorer.consumer.poll(timeout=1.0, max_records=2)
    by_offset = sorted(polled, key=lambda m: (m.partition, m.offset))

    scorer.process_batch(by_offset[:2], models=models())

    assert FraudScore.objects.count() == 2
    assert UnloggedScore.objects.count() == 2
    assert scorer.bus.committed("g", scorer.topic) == {}
    assert not config.logs_dir.exists() or list(config.logs_dir.rglob("*.parquet")) == []

    scorer.process_batch(by_offset[2:], models=models())  # the third vector: a flush is due
    scorer.flush()  # wait for the write it started

    assert UnloggedScore.objects.count() == 0
    assert len(list(config.logs_dir.rglob("*.parquet"))) == 1
    committed = scorer.bus.committed("g", scorer.topic)
    assert sum(committed.values()) == 3
    scorer.consumer.close()
    scorer.reader.close()


def _recording_spy(monkeypatch, *, fail_at: int | None = None) -> list[str]:
    """Record the thread of each ``scores_record`` call (the real one); the ``fail_at``-th
    call (from 1) raises instead."""
    threads: list[str] = []
    real = scorer_module.scores_record

    def spy(*, drafts):
        threads.append(threading.current_thread().name)
        if len(threads) == fail_at:
            raise RuntimeError("the database went away")
        return real(drafts=drafts)

    monkeypatch.setattr(scorer_module, "scores_record", spy)
    return threads


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("overlap_min_records", "recorder"),
    [(0, "fraud-record"), (100, "MainThread")],
    ids=["overlapped", "one-by-one"],
)
def test_run_records_each_batch_once_on_the_thread_its_size_calls_for(
    config, tmp_path, monkeypatch, overlap_min_records, recorder
):
    model_deploy(tmp_path, version="champ")
    threads = _recording_spy(monkeypatch)
    scorer = scorer_make(config, tmp_path, max_records=7, overlap_min_records=overlap_min_records)
    events = [payment(card_id=f"card-{i % 4}") for i in range(30)]
    producer = scorer.bus.producer()
    producer.publish([Record(scorer.topic, e.encode(), key=e.key()) for e in events])
    producer.publish([Record(scorer.topic, b"{not json", key="poison")])

    stats = scorer.run(until_idle_s=1.0)

    assert (stats.events, stats.scored, stats.duplicates, stats.poison) == (31, 30, 0, 1)
    assert len(threads) >= 5
    assert {name.split("_")[0] for name in threads} == {recorder}
    ids = {e.event_id for e in events}
    assert set(FraudScore.objects.values_list("event_id", flat=True)) == ids
    assert UnloggedScore.objects.count() == 0
    assert {v.payment_event_id for v in published(scorer.bus, "t.fraud.scored.v1")} == ids
    assert set(logged_features(config)["event_id"]) == {str(i) for i in ids}
    assert sum(scorer.bus.committed(scorer.group, scorer.topic).values()) == 31
    consumer = scorer.bus.consumer(group="check", topics=["t.deadletter.fraud-scorer"])
    dead = consumer.poll(timeout=1.0)
    consumer.close()
    assert [m.value for m in dead] == [b"{not json"]


@pytest.mark.django_db(transaction=True)
def test_a_batch_whose_recording_fails_stops_the_run_uncommitted(config, tmp_path, monkeypatch):
    model_deploy(tmp_path, version="champ")
    _recording_spy(monkeypatch, fail_at=2)
    # Batch 3 may be scored while batch 2 is recorded.
    scorer = scorer_make(config, tmp_path, max_records=5, overlap_min_records=0)
    events = [payment(card_id=f"card-{i}") for i in range(15)]
    producer = scorer.bus.producer()
    producer.publish([Record(scorer.topic, e.encode(), key=e.key()) for e in events])

    with pytest.raises(RuntimeError, match="the database went away"):
        scorer.run(until_idle_s=1.0)

    # The first batch is finished and committed; the failed one and any scored after it are
    # neither recorded nor committed.
    first = FraudScore.objects.count()
    assert 0 < first < 15
    assert UnloggedScore.objects.count() == 0
    assert sum(scorer.bus.committed(scorer.group, scorer.topic).values()) == first

    monkeypatch.setattr(scorer_module, "scores_record", scores_record)
    again = scorer_make(config, tmp_path, max_records=5)
    stats = again.run(until_idle_s=1.0)

    assert (stats.scored, stats.duplicates) == (15 - first, 0)
    assert set(FraudScore.objects.values_list("event_id", flat=True)) == {
        e.event_id for e in events
    }
    assert sum(again.bus.committed(again.group, again.topic).values()) == 15


@pytest.mark.django_db(transaction=True)
def test_a_failed_log_write_in_a_run_commits_and_leaves_the_scores_to_the_sweep(
    config, tmp_path, monkeypatch, caplog
):
    model_deploy(tmp_path, version="champ")

    def broken(config, items):
        raise OSError("disk full")

    monkeypatch.setattr(scorer_module, "feature_log_items", broken)
    scorer = scorer_make(config, tmp_path, max_records=4)
    events = [payment(card_id=f"card-{i}") for i in range(10)]
    producer = scorer.bus.producer()
    producer.publish([Record(scorer.topic, e.encode(), key=e.key()) for e in events])

    stats = scorer.run(until_idle_s=1.0)

    assert (stats.scored, stats.logged) == (10, 0)
    assert stats.log_failures >= 1
    assert "feature log write failed; the sweep will retry: disk full" in caplog.text
    assert UnloggedScore.objects.count() == 10
    assert sum(scorer.bus.committed(scorer.group, scorer.topic).values()) == 10


def test_lists_and_rules_have_their_say_and_are_recorded_in_the_score_and_the_verdict(
    config, scorer, tmp_path, flags
):
    from fraud.services.policy import list_entry_add, rule_save

    model_deploy(tmp_path, version="champ", review=0.5, decline=0.999)
    list_entry_add(
        kind="card", value="card-stolen", action="block", reason="reported stolen", author=None
    )
    rule_save(
        name="large calm payment", expression="amount_cents >= 9000", action="review",
        author=None, mode="active",
    )  # fmt: skip
    rule_save(
        name="any payment", expression="amount_cents > 0", action="block", author=None,
        mode="shadow",
    )  # fmt: skip
    stolen = payment(card_id="card-stolen")
    large = payment(card_id="card-large", amount_cents=9500)
    calm = payment(card_id="card-calm")

    batch(scorer, [stolen, large, calm])

    scores = {s.card_id: s for s in FraudScore.objects.all()}
    assert {card: s.decision for card, s in scores.items()} == {
        "card-stolen": "decline", "card-large": "review", "card-calm": "approve",
    }  # fmt: skip
    assert [(m["name"], m["acted"]) for m in scores["card-stolen"].matched] == [
        ("card block list", True),
        ("any payment", False),
    ]
    assert [(m["name"], m["acted"], m["shadow"]) for m in scores["card-large"].matched] == [
        ("large calm payment", True, False),
        ("any payment", False, True),
    ]
    assert ReviewItem.objects.get().score == scores["card-large"]
    verdicts = {e.card_id: e for e in published(scorer.bus, "t.fraud.scored.v1")}
    assert verdicts["card-stolen"].decision == "decline"
    assert [m.name for m in verdicts["card-calm"].matched] == ["any payment"]
    assert verdicts["card-calm"].matched[0].shadow is True
