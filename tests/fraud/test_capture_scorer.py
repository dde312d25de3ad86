"""The capture checkpoint's scorer, in process on the embedded feature store and PostgreSQL: it
reads ``payments.capture_requested.v1``, serves ``fraud_capture_v1`` (the driver's features
known), decides with the capture champion alone, and records, publishes and logs as the
authorization's scorer does, beside it and apart from it."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest

from events.contracts import ChargebackFiled, PaymentCaptureRequested
from features.definitions import FRAUD_CAPTURE_V1
from features.processor import StreamProcessor, state_from_config
from features.served_log import logged_features
from fraud.deployments import DeploymentWatcher
from fraud.models import Deployment, FraudScore, ReviewItem
from tests.features.stores import applied_store
from tests.features.streams import messages_for
from tests.fraud.factories import NOW, model_deploy, payment
from tests.fraud.scorer_helpers import NAMESPACE, messages, published, scorer_make

pytestmark = pytest.mark.django_db

SIGNAL = "driver_chargebacks_24h"


@pytest.fixture
def config(tmp_path):
    yield from applied_store(tmp_path)


def _capture_champion(tmp_path, *, version: str = "capture-champ") -> Deployment:
    """A capture model where fraud is a driver with four or more chargebacks in a day."""
    return model_deploy(
        tmp_path, version=version, review=0.5, decline=0.999, service=FRAUD_CAPTURE_V1.name,
        signal=SIGNAL,
    )  # fmt: skip


def _chargebacks_applied(
    config, driver_id: str, count: int, *, at: datetime = NOW, namespace: str = NAMESPACE
) -> None:
    """Apply ``count`` fraud chargebacks on ``driver_id``'s trips, received an hour before
    ``at`` (the tests' captures by default), as the stream processor does."""
    processor = StreamProcessor(
        bus=None, config=config, state=state_from_config(config), namespace=namespace
    )
    events = [
        ChargebackFiled(
            chargeback_id=f"cb-{uuid.uuid4().hex[:8]}",
            payment_id=f"pay-{uuid.uuid4().hex[:8]}",
            card_id=f"card-victim-{i}",
            rider_id=f"rider-victim-{i}",
            amount_cents=2000,
            reason_code="10.4",
            trip_id=f"trip-{i}",
            driver_id=driver_id,
            pickup_zone="Z-1-1",
            occurred_at=at - timedelta(hours=1),
        )
        for i in range(count)
    ]
    try:
        processor.process_batch(messages_for(events, namespace=namespace))
    finally:
        processor.state.close()


def capture_request(*, driver_id: str, card_id: str = "card-1") -> PaymentCaptureRequested:
    """The capture request of a payment like the tests' authorizations, at the trip's end."""
    authorized = payment(card_id=card_id)
    fields = authorized.model_dump(exclude={"event_id", "occurred_at"})
    return PaymentCaptureRequested(
        **fields, driver_id=driver_id, occurred_at=NOW + timedelta(minutes=2)
    )


def test_a_driver_with_chargebacks_gets_the_fare_held_and_the_rest_captured(config, tmp_path):
    model_deploy(tmp_path / "auth", version="auth-champ")  # the other checkpoint's: unused
    _capture_champion(tmp_path)
    _chargebacks_applied(config, "driver-bad", 6)
    scorer = scorer_make(config, tmp_path, service=FRAUD_CAPTURE_V1.name)
    try:
        assert (scorer.name, scorer.group) == ("fraud-capture-scorer", "fraud-capture-scorer")
        assert scorer.topic == f"{NAMESPACE}.payments.capture_requested.v1"
        watcher = DeploymentWatcher(poll_s=0, checkpoint="capture")
        bad = capture_request(driver_id="driver-bad", card_id="card-a")
        good = capture_request(driver_id="driver-good", card_id="card-b")
        # An authorization on the capture topic is not what this scorer reads.
        stray = payment(card_id="card-c")
        scorer.process_batch(messages([bad, good, stray]), models=watcher.current())
        scorer.flush()
    finally:
        scorer.reader.close()

    scores = {s.card_id: s for s in FraudScore.objects.all()}
    assert sorted(scores) == ["card-a", "card-b"]
    held, captured = scores["card-a"], scores["card-b"]
    assert (held.checkpoint, held.model_version, held.decision) == (
        "capture", "capture-champ", "review",
    )  # fmt: skip
    assert (captured.checkpoint, captured.decision) == ("capture", "approve")
    assert held.score > captured.score
    assert held.reasons[0]["feature"] == SIGNAL
    # The analysts get the held fare in their queue, with the case page's map.
    assert ReviewItem.objects.get().score_id == held.id

    verdicts = {e.card_id: e for e in published(scorer.bus, f"{NAMESPACE}.fraud.scored.v1")}
    assert {e.checkpoint for e in verdicts.values()} == {"capture"}
    assert verdicts["card-a"].payment_event_id == bad.event_id
    assert verdicts["card-a"].decision == "review"

    # Logged under its own service, with the driver it was served for.
    log = logged_features(config, service=FRAUD_CAPTURE_V1.name).set_index("event_id")
    assert sorted(log.index) == sorted([str(bad.event_id), str(good.event_id)])
    assert log.loc[str(bad.event_id), SIGNAL] == 6
    assert log.loc[str(bad.event_id), "driver_id"] == "driver-bad"
    assert logged_features(config).empty  # nothing in the authorization's log
    dead = published_raw(scorer.bus, f"{NAMESPACE}.deadletter.fraud-capture-scorer")
    assert len(dead) == 1


def published_raw(bus, topic: str) -> list[bytes]:
    consumer = bus.consumer(group=f"check-{uuid.uuid4().hex[:8]}", topics=[topic])
    try:
        return [m.value for m in consumer.poll(timeout=1.0, max_records=100)]
    finally:
        consumer.close()


def test_each_checkpoint_keeps_its_own_champion(tmp_path):
    auth = model_deploy(tmp_path / "auth", version="auth-champ")
    first = _capture_champion(tmp_path / "c1", version="capture-1")
    assert (auth.checkpoint, first.checkpoint) == ("authorization", "capture")
    second = _capture_champion(tmp_path / "c2", version="capture-2")
    roles = dict(Deployment.objects.values_list("model_version", "role"))
    # The new capture champion retired the old one, and left the authorization's alone.
    assert roles == {"auth-champ": "champion", "capture-1": "retired", "capture-2": "champion"}
    assert DeploymentWatcher(poll_s=0).current().champion.model_version == "auth-champ"
    capture = DeploymentWatcher(poll_s=0, checkpoint="capture").current()
    assert capture.champion.model_version == second.model_version


def test_the_capture_scorer_without_a_capture_champion_waits(config, tmp_path):
    model_deploy(tmp_path / "auth", version="auth-champ")
    scorer = scorer_make(config, tmp_path, service=FRAUD_CAPTURE_V1.name)
    try:
        assert scorer.ready() is False
    finally:
        scorer.reader.close()


def test_the_learning_loop_reads_the_authorizations_decisions_and_vectors_only():
    from fraud.selectors import decisions_of, served_newest
    from tests.fraud.live_factories import score_make

    authorized = score_make(score=0.2, amount_cents=1000)
    captured = score_make(score=0.9, amount_cents=1000)
    FraudScore.objects.filter(pk=captured.pk).update(
        checkpoint="capture", payment_id=authorized.payment_id, decision="decline"
    )
    # The capture's later decline on the same payment is not the authorization model's.
    assert decisions_of(payment_ids=[authorized.payment_id]) == {
        authorized.payment_id: authorized.decision
    }
    assert [score for score, _, _ in served_newest(limit=10)] == [authorized.score]


def test_a_degraded_fare_is_rescored_by_the_capture_models_and_the_authorizations_left_alone(
    config, tmp_path
):
    from fraud.deployments import model_set_build
    from fraud.feature_reads import FeatureReader
    from fraud.scoring import unserved_vector, vector_record
    from fraud.selectors import deployments_active
    from fraud.services import scores_rescore
    from tests.fraud.live_factories import score_make

    _capture_champion(tmp_path)
    _chargebacks_applied(config, "driver-bad", 6)
    held = capture_request(driver_id="driver-bad")
    request = {
        "payment_id": held.payment_id, "card_id": held.card_id, "rider_id": held.rider_id,
        "driver_id": "driver-bad", "pickup_zone": held.pickup_zone,
        "amount_cents": held.amount_cents, "distance_km": held.distance_km,
        "occurred_at": held.occurred_at.isoformat(),
    }  # fmt: skip
    fare, authorized = score_make(degraded=True, score=0.1), score_make(degraded=True, score=0.1)
    FraudScore.objects.filter(pk=fare.pk).update(
        checkpoint="capture",
        features=vector_record(
            unserved_vector(request, FRAUD_CAPTURE_V1.name), service=FRAUD_CAPTURE_V1.name,
            request=request, request_time=held.occurred_at,
        ),
    )  # fmt: skip
    reader = FeatureReader(config, service=FRAUD_CAPTURE_V1.name, timeout_s=5.0)
    try:
        assert reader.warm()
        capture_models = model_set_build(deployments_active(checkpoint="capture"))
        assert scores_rescore(models=capture_models, reader=reader, checkpoint="capture") == 1
    finally:
        reader.close()
    fare.refresh_from_db()
    authorized.refresh_from_db()
    # Served now, the driver's six chargebacks count: the full score and its reasons.
    assert fare.rescored_at is not None
    assert fare.score > 0.5
    assert fare.reasons[0]["feature"] == SIGNAL
    assert (authorized.rescored_at, authorized.score) == (None, 0.1)
