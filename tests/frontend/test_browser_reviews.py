"""The analyst's review flow in Chromium, end to end: a payment the scorer sent to review has
its capture held; an analyst opens it from the queue by keyboard (claiming it), a second
analyst is told it is taken, ``f`` closes it as confirmed fraud; the decision reaches the
stream through the outbox relay as ``reviews.decided.v1`` and the booking's consumer voids
the held payment."""

from __future__ import annotations

import json
import uuid

import pytest
from playwright.sync_api import expect

from events.backends.embedded import EmbeddedBus
from events.bus import Record
from events.contracts import TOPICS, FraudScored, PaymentAuthorized, ReviewDecided
from events.models import OutboxEvent
from events.registry import CONSUMERS, ConsumerSpec
from events.relay import relay_once
from events.runner import ConsumerRunner
from fraud.models import FraudScore, ReviewItem
from fraud.scoring import unserved_vector, vector_record
from fraud.services import scored_event
from fraud.services.reviews import analyst_ensure, review_decide
from rideshare import services
from rideshare.models import Payment
from tests.fraud.live_factories import score_make
from tests.frontend.test_browser_rider import _log_in, _screenshot
from tests.rideshare.factories import driver_make, trip_make

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _verdicts(bus: EmbeddedBus) -> None:
    """Run the booking's verdict consumer over what is on ``bus``."""
    assert (
        ConsumerRunner(CONSUMERS["booking-verdicts"], bus).run(idle_timeout_s=2).dead_lettered == 0
    )


def _verdict_acted_on(bus: EmbeddedBus, score: FraudScore) -> None:
    """Publish ``score``'s verdict as the scorer does and run the booking's verdict consumer."""
    verdict = scored_event(score)
    producer = bus.producer()
    assert producer.publish([Record(FraudScored.topic, verdict.encode(), key=verdict.key())]) == [
        None
    ]
    producer.close()
    _verdicts(bus)


def _in_review(bus: EmbeddedBus) -> tuple[Payment, ReviewItem]:
    """A completed trip whose payment the scorer sent to review (its score, review item and
    verdict as the scorer writes them), the capture held by the booking."""
    trip = trip_make()
    driver = driver_make()
    payment = Payment.objects.select_related("card", "rider").get(trip=trip)
    score = FraudScore.objects.create(
        event_id=uuid.uuid4(), payment_id=str(payment.public_id),
        card_id=str(payment.card.public_id), rider_id=str(payment.rider.public_id),
        pickup_zone=trip.pickup_zone, amount_cents=payment.amount_cents, currency="EUR",
        occurred_at=payment.created_at, scored_at=payment.created_at, score=0.71,
        decision="review", model_version="m-test", role="champion", latency_ms=9.0,
        reasons=[{"feature": "card_payments_10m", "value": 5, "contribution": 1.2,
                  "text": "5 payments on this card in the last 10 minutes"}],
    )  # fmt: skip
    review = ReviewItem.objects.create(
        score=score, device_id="dev-7", ip="203.0.113.9", card_brand=payment.card.brand,
        card_last4=payment.card.last4, pickup_lat=trip.pickup_lat, pickup_lng=trip.pickup_lng,
        dropoff_lat=trip.dropoff_lat, dropoff_lng=trip.dropoff_lng,
    )  # fmt: skip
    _verdict_acted_on(bus, score)
    services.trip_assign(trip=trip, driver=driver)
    services.trip_pick_up(trip=trip, driver=driver)
    services.trip_complete(trip=trip, driver=driver)
    payment.refresh_from_db()
    assert (payment.status, payment.capture_held) == ("authorized", True)
    return payment, review


def test_an_analyst_decides_fraud_by_keyboard_and_the_held_payment_is_voided(
    asgi_server, browser, page, artifacts_dir, tmp_path
):
    bus = EmbeddedBus(tmp_path / "event-log.sqlite3")
    bus.ensure_topics(list(TOPICS), partitions=1)
    payment, review = _in_review(bus)
    analyst_ensure(username="ana", password="ana-pass")
    analyst_ensure(username="ben", password="ben-pass")

    _log_in(page, asgi_server, "ana", "ana-pass")
    page.get_by_role("link", name="Review queue").click()
    expect(page.locator("#queue-total")).to_have_text("1 open review")
    row = page.locator(f"#review-{review.pk}")
    expect(row).to_contain_text("€20.14")
    expect(row).to_have_class("review-row current")
    page.keyboard.press("?")
    expect(page.locator("#keys-help")).to_be_visible()
    page.keyboard.press("Escape")
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{asgi_server.url}/fraud/reviews/{review.pk}/")
    expect(page.locator("h1")).to_have_text("€20.14 on Visa •••• 4242")
    expect(page.locator("#feature-bars")).to_contain_text(
        "5 payments on this card in the last 10 minutes"
    )
    # The strongest reason's bar spans its track (its width set by script, not a style
    # attribute: the Content-Security-Policy refuses those).
    bar = page.locator("#feature-bars .bar").first
    expect(bar).to_have_attribute("data-width", "100")
    assert bar.evaluate("el => el.style.getPropertyValue('--w')") == "100%"
    # The map draws the trip's pickup and drop-off.
    expect(page.locator("#case-map")).to_have_attribute("data-drawn", "2")
    expect(page.locator("#case-map .pin-pickup")).to_have_count(1)
    _screenshot(page, artifacts_dir, "review-case.png")

    other = browser.new_context(viewport={"width": 1200, "height": 800})
    try:
        second = other.new_page()
        _log_in(second, asgi_server, "ben", "ben-pass")
        second.goto(f"{asgi_server.url}/fraud/reviews/{review.pk}/")
        expect(second.locator("#taken")).to_have_text("ana is reviewing this payment.")
        expect(second.locator("#decide-form")).to_have_count(0)
        second.keyboard.press("f")  # nothing to decide here
    finally:
        other.close()

    page.keyboard.press("n")
    page.keyboard.type("Card tester pattern.")
    page.keyboard.press("Escape")
    page.keyboard.press("f")
    expect(page).to_have_url(f"{asgi_server.url}/fraud/reviews/")
    expect(page.locator(".flash")).to_contain_text("Review closed: confirmed fraud.")
    expect(page.locator("#queue-empty")).to_be_visible()

    review.refresh_from_db()
    assert (review.status, review.outcome, review.decided_by.get_username()) == (
        "decided", "confirmed_fraud", "ana",
    )  # fmt: skip
    assert [n.text for n in review.notes.all()] == ["Card tester pattern."]
    producer = bus.producer()
    assert relay_once(producer).failed == 0
    producer.close()
    consumer = bus.consumer(group=f"read-{uuid.uuid4().hex[:8]}", topics=[ReviewDecided.topic])
    decided = [json.loads(m.value) for m in consumer.poll(timeout=5.0)]
    consumer.close()
    assert [(d["reason"], d["decision"], d["analyst"], d["payment_id"]) for d in decided] == [
        ("confirmed_fraud", "confirmed_fraud", "ana", str(payment.public_id))
    ]
    _verdicts(bus)
    # The card is blocked before the model, shown on the lists page.
    page.goto(f"{asgi_server.url}/fraud/lists/")
    entry = page.locator("#entries tbody tr")
    expect(entry).to_have_count(1)
    expect(entry).to_contain_text(str(payment.card.public_id))
    expect(entry).to_contain_text(f"confirmed fraud in review {review.pk}")
    expect(entry).to_contain_text("before the model")
    payment.refresh_from_db()
    assert (payment.status, payment.review_outcome, payment.captured_cents) == (
        "voided", "confirmed_fraud", 0,
    )  # fmt: skip


def test_the_next_payment_of_a_card_found_fraudulent_is_declined_by_the_list_and_cancelled(
    asgi_server, page, tmp_path
):
    """The loop closed end to end: after ``f``, the rider books again with the same card; the
    scorer (a champion deployed, the embedded feature store) declines the payment by the block
    list before the model, its verdict travels the bus, the booking cancels the trip, and the
    rider's trip page says why."""
    from features.repo import apply_repo
    from features.store import feature_store
    from tests.features.stores import feature_config
    from tests.fraud.factories import model_deploy
    from tests.fraud.scorer_helpers import NAMESPACE, batch, scorer_make

    bus = EmbeddedBus(tmp_path / "event-log.sqlite3")
    bus.ensure_topics(list(TOPICS), partitions=1)
    payment, review = _in_review(bus)
    analyst = analyst_ensure(username="ana", password="ana-pass")
    review_decide(review=review, analyst=analyst, outcome="confirmed_fraud")
    model_deploy(tmp_path, version="champ", review=0.5, decline=0.99)
    config = feature_config(tmp_path)
    apply_repo(config)
    scorer = scorer_make(config, tmp_path, bus=bus)
    try:
        mark = OutboxEvent.objects.order_by("-id").values_list("id", flat=True).first()
        again = trip_make(payment.rider, card=payment.card)
        row = OutboxEvent.objects.get(id__gt=mark, topic=PaymentAuthorized.topic)
        batch(scorer, [PaymentAuthorized.model_validate_json(row.payload)])
    finally:
        scorer.reader.close()
        feature_store(config).teardown()
    score = FraudScore.objects.get(payment_id=str(again.payment.public_id))
    assert score.decision == "decline"
    assert [(m["name"], m["acted"]) for m in score.matched] == [("card block list", True)]
    registered = CONSUMERS["booking-verdicts"]
    spec = ConsumerSpec(
        name=registered.name, handler=registered.handler,
        topics=(f"{NAMESPACE}.{FraudScored.topic}",),
    )  # fmt: skip
    assert ConsumerRunner(spec, bus).run(idle_timeout_s=2).applied >= 1
    again.refresh_from_db()
    assert (again.status, again.cancel_reason, again.payment.status) == (
        "cancelled", "payment_risk", "voided",
    )  # fmt: skip
    _log_in(page, asgi_server, payment.rider.user.username, f"pw-{payment.rider.user.username}")
    page.goto(f"{asgi_server.url}/trips/{again.public_id}/")
    expect(page.locator("#payment-risk")).to_contain_text("We could not verify this payment")


def test_a_key_on_the_queue_decides_the_highlighted_review(asgi_server, page):
    first, second = (
        ReviewItem.objects.create(score=score_make(score=s, amount_cents=5000)) for s in (0.9, 0.6)
    )
    analyst_ensure(username="ana", password="ana-pass")
    _log_in(page, asgi_server, "ana", "ana-pass")
    page.goto(f"{asgi_server.url}/fraud/reviews/")
    expect(page.locator(f"#review-{first.pk}")).to_have_class("review-row current")
    page.keyboard.press("j")
    expect(page.locator(f"#review-{second.pk}")).to_have_class("review-row current")
    page.keyboard.press("a")
    expect(page.locator(".flash")).to_contain_text("1 review closed: approved.")
    second.refresh_from_db()
    first.refresh_from_db()
    assert (first.status, second.status, second.outcome) == ("open", "decided", "approved")


def test_a_fare_held_at_the_trips_end_is_approved_by_an_analyst_and_captured(
    asgi_server, page, artifacts_dir, tmp_path, settings
):
    settings.RIDESHARE_CAPTURE_WAIT_SECONDS = 120
    bus = EmbeddedBus(tmp_path / "event-log.sqlite3")
    bus.ensure_topics(list(TOPICS), partitions=1)
    trip, driver = trip_make(), driver_make()
    services.trip_assign(trip=trip, driver=driver)
    services.trip_pick_up(trip=trip, driver=driver)
    services.trip_complete(trip=trip, driver=driver)
    payment = Payment.objects.select_related("card", "rider").get(trip=trip)
    assert (payment.status, payment.capture_due_at is not None) == ("authorized", True)
    # The capture scorer's score, review item and verdict, as it writes them.
    request = {
        "payment_id": str(payment.public_id), "card_id": str(payment.card.public_id),
        "rider_id": str(payment.rider.public_id), "driver_id": str(driver.public_id),
        "pickup_zone": trip.pickup_zone, "amount_cents": trip.fare_cents,
        "distance_km": trip.distance_km, "occurred_at": payment.created_at.isoformat(),
    }  # fmt: skip
    score = FraudScore.objects.create(
        event_id=uuid.uuid4(), checkpoint="capture", payment_id=str(payment.public_id),
        card_id=str(payment.card.public_id), rider_id=str(payment.rider.public_id),
        pickup_zone=trip.pickup_zone, amount_cents=trip.fare_cents, currency="EUR",
        occurred_at=payment.created_at, scored_at=payment.created_at, score=0.64,
        decision="review", model_version="m-capture", role="champion", latency_ms=12.0,
        reasons=[{"feature": "driver_chargebacks_24h", "value": 6, "contribution": 1.4,
                  "text": "6 chargebacks on this driver's trips in the last 24 hours"}],
        features=vector_record(
            unserved_vector(request, "fraud_capture_v1"), service="fraud_capture_v1",
            request=request, request_time=payment.created_at,
        ),
    )  # fmt: skip
    review = ReviewItem.objects.create(score=score, card_brand="Visa", card_last4="4242")
    _verdict_acted_on(bus, score)
    payment.refresh_from_db()
    assert (payment.status, payment.capture_held) == ("authorized", True)

    analyst_ensure(username="ana", password="ana-pass")
    _log_in(page, asgi_server, "ana", "ana-pass")
    page.goto(f"{asgi_server.url}/fraud/reviews/")
    row = page.locator(f"#review-{review.pk}")
    expect(row.locator(".badge-capture")).to_have_text("fare held")
    page.keyboard.press("Enter")
    expect(page.locator("#checkpoint")).to_have_text("at the trip's end: fare held")
    expect(page.locator("#driver")).to_have_text(f"{str(driver.public_id)[:8]}…")
    _screenshot(page, artifacts_dir, "review-capture-case.png")
    page.keyboard.press("a")
    expect(page.locator(".flash")).to_contain_text("Review closed: approved.")

    producer = bus.producer()
    assert relay_once(producer).failed == 0
    producer.close()
    _verdicts(bus)
    payment.refresh_from_db()
    assert (payment.status, payment.captured_cents, payment.capture_held) == (
        "captured", trip.fare_cents, False,
    )  # fmt: skip
