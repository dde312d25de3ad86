"""Live mode: the city paced by its simulated clock against the app, and the simulated analyst
who decides the simulator's reviews through the fraud desk API of a real server."""

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from events.backends.embedded import EmbeddedBus
from events.contracts import TOPICS, decode
from fraud.models import FraudScore, ReviewItem
from fraud.services.reviews import analyst_ensure
from simulator.config import SimConfig, parse_drift
from simulator.endtoend import ApiError, Http
from simulator.engine import Simulation
from simulator.live import Analyst, live_publish
from simulator.models import GroundTruth, SimulationRun
from simulator.report import Stats
from simulator.selectors import payments_truth
from tests.events.bus_helpers import drain

START = datetime(2026, 3, 2, 8, tzinfo=UTC)  # the simulated clock's start
WALL = datetime(2026, 12, 7, 15, 30, tzinfo=UTC)  # the app's time at the run's start


class FakeClock:
    """Only sleeping moves it; a real clock has moved a little when a sleep returns."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept = 0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept += 1
        self.now += max(seconds, 1e-3)


def test_events_go_out_when_the_sped_up_clock_reaches_them_stamped_in_the_apps_time(tmp_path, city):
    config = SimConfig(seed=3, start=START, riders=300, drivers=40)
    clock, ticks = FakeClock(), []
    bus = EmbeddedBus(tmp_path / "log.sqlite3")
    stats = Stats(mode="live")
    speedup, duration = 600.0, 30.0

    live_publish(
        Simulation(config, city).events(), bus=bus, start=START, wall_start=WALL, speedup=speedup,
        duration_s=duration, stats=stats, on_tick=ticks.append,
        clock=clock.monotonic, sleep=clock.sleep,
    )  # fmt: skip

    # Exactly the events of the first 30 s x 600 = 5 simulated hours went out, in order.
    expected = list(
        Simulation(config, city).events(until=START + timedelta(seconds=duration * speedup))
    )
    assert stats.published == len(expected) > 50
    consumer = bus.consumer(group="g", topics=list(TOPICS))
    got = {m.value and decode(m.topic, m.value) for m in drain(consumer, len(expected))}
    consumer.close()
    by_id = {e.event_id: e for e in got}
    for item in expected:
        sent = by_id[item.event.event_id]
        # Stamped with the instant it was due in the app's time: 600 times closer to its start.
        assert sent.occurred_at == WALL + (item.event.occurred_at - START) / speedup
    stamps = sorted(e.occurred_at for e in got)
    assert stamps[0] >= WALL
    assert stamps[-1] <= WALL + timedelta(seconds=duration)
    assert all(b >= a for a, b in itertools.pairwise(stamps))
    # The loop slept between due times (it did not spin) and gave the analyst its turns.
    assert clock.slept >= duration / 0.25
    assert len(ticks) >= clock.slept
    assert ticks == sorted(ticks)
    assert ticks[0] >= WALL
    assert stats.stopped is False


def test_a_live_run_is_bounded_and_moves_forward(tmp_path, city):
    events = Simulation(SimConfig(start=START), city).events()
    bus = EmbeddedBus(tmp_path / "l")
    with pytest.raises(ValueError, match="bounded"):
        live_publish(
            events, bus=bus, start=START, wall_start=WALL, speedup=60, duration_s=0,
            stats=Stats("live"),
        )  # fmt: skip
    with pytest.raises(ValueError, match="speedup"):
        live_publish(
            events, bus=bus, start=START, wall_start=WALL, speedup=0, duration_s=5,
            stats=Stats("live"),
        )  # fmt: skip


def test_a_drift_after_the_start_is_in_the_apps_time_scaled_to_the_simulated_clock():
    drift = parse_drift("account_takeover@+10m", start=START, scale=60)
    assert drift.at == START + timedelta(hours=10)
    assert parse_drift("black_friday@+1.5h", start=START).at == START + timedelta(minutes=90)
    with pytest.raises(ValueError, match="needs a start"):
        parse_drift("fraud_ring@+10m")
    with pytest.raises(ValueError, match="not a duration"):
        parse_drift("fraud_ring@+soon", start=START)


def _review_of(payment_id: str, *, score: float = 0.7) -> ReviewItem:
    now = timezone.now()
    fraud_score = FraudScore.objects.create(
        event_id=uuid.uuid4(), payment_id=payment_id, card_id=f"card-{payment_id}",
        rider_id=f"rider-{payment_id}", pickup_zone="Z-1-1", amount_cents=2400, currency="EUR",
        occurred_at=now, scored_at=now, score=score, decision="review",
        model_version="fraud-lgbm-test", role="champion", reasons=[], latency_ms=3.0,
    )  # fmt: skip
    return ReviewItem.objects.create(score=fraud_score)


def _truth(payment_id: str, *, is_fraud: bool) -> None:
    GroundTruth.objects.create(
        event_id=uuid.uuid4(), topic="payments.authorized.v1", occurred_at=timezone.now(),
        payment_id=payment_id, is_fraud=is_fraud, scenario="stolen_card_burst" if is_fraud else "",
    )  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_the_analyst_decides_the_simulators_reviews_by_truth_through_the_api(live_server):
    analyst_ensure(username="sim-analyst", password="analyst-pass")
    fraud, legit, people = _review_of("pay-f"), _review_of("pay-l"), _review_of("pay-person")
    _truth("pay-f", is_fraud=True)
    _truth("pay-l", is_fraud=False)
    stats = Stats(mode="live")
    analyst = Analyst(
        http=Http(live_server.url), username="sim-analyst", password="analyst-pass",
        truth_of=lambda ids: payments_truth(payment_ids=ids), stats=stats, accuracy=1.0,
        think_s=(10.0, 20.0),
    )  # fmt: skip

    analyst.tick(0.0)  # logs in, reads the queue: nothing is due before its think time
    assert ReviewItem.objects.filter(status="open").count() == 3
    analyst.tick(25.0)

    assert stats.errors == 0, stats.error_samples
    fraud.refresh_from_db()
    legit.refresh_from_db()
    people.refresh_from_db()
    assert (fraud.status, fraud.outcome, fraud.decided_by.username) == (
        "decided", "confirmed_fraud", "sim-analyst",
    )  # fmt: skip
    assert (legit.status, legit.outcome) == ("decided", "approved")
    assert people.status == "open"  # not the simulator's payment: left to a person
    assert stats.events["review_confirmed_fraud"] == 1
    assert stats.events["review_approved"] == 1


@pytest.mark.django_db(transaction=True)
def test_an_analyst_with_a_wrong_password_is_an_error_not_a_crash(live_server):
    stats = Stats(mode="live")
    analyst = Analyst(
        http=Http(live_server.url), username="nobody", password="wrong",
        truth_of=lambda ids: {}, stats=stats,
    )  # fmt: skip
    analyst.tick(0.0)
    assert stats.errors == 1
    assert "log_in_failed" in stats.error_samples[0]


@pytest.mark.django_db(transaction=True)
def test_the_live_command_plays_the_city_and_records_the_run(live_server, tmp_path, settings):
    settings.EVENT_BUS = "embedded"
    settings.EVENT_LOG_PATH = tmp_path / "log.sqlite3"
    analyst_ensure(username="analyst", password="analyst")

    call_command(
        "simulate", "live", "--base-url", live_server.url, "--duration", "2",
        "--speedup", "7200", "--riders", "300", "--drift", "card_testing@+1s",
    )  # fmt: skip

    run = SimulationRun.objects.get()
    assert (run.mode, run.status, run.errors) == ("live", "finished", 0)
    # The city starts at 07:00 (simulated) whenever the run starts.
    assert run.params["config"]["start"].endswith("T07:00:00+00:00")
    assert run.params["config"]["drifts"][0].startswith("card_testing@")
    bus = EmbeddedBus(tmp_path / "log.sqlite3")
    published = sum(sum(bus.end_offsets(t).values()) for t in TOPICS)
    assert published == run.events_published > 0
    assert GroundTruth.objects.filter(run=run, topic="payments.authorized.v1").exists()
    # Chargebacks come minutes after their payment in the app's time (3 by default): at
    # 7,200x, 3 minutes are 15 simulated days.
    assert run.params["config"]["labels"]["delay_median_days"] == pytest.approx(15.0)


def test_the_live_command_refuses_a_remote_app():
    with pytest.raises(CommandError, match="loopback"):
        call_command("simulate", "live", "--duration", "1", "--base-url", "http://10.0.0.5")


class FlakyDesk:
    """The fraud desk API as the analyst sees it, answering one decision with a server error
    page (not JSON) before it works: a unit-test double of ``Http``."""

    def __init__(self) -> None:
        self.posts: list[str] = []
        self.failed = False

    def log_in(self, username: str, password: str) -> None:
        pass

    def session_json(self, method, path, *, payload=None, expect=(200,)):
        if method == "GET":
            return 200, [{"id": 7, "payment_id": "pay-7"}]
        self.posts.append(path)
        if not self.failed:
            self.failed = True
            raise ApiError(method, path, 500, {"code": "not_json"})
        return 200, {}


def test_a_decision_the_server_failed_is_tried_again_on_the_next_turn():
    desk, stats = FlakyDesk(), Stats(mode="live")
    analyst = Analyst(
        http=desk, username="a", password="p", truth_of=lambda ids: {"pay-7": True},
        stats=stats, accuracy=1.0, think_s=(0.0, 0.0),
    )  # fmt: skip
    analyst.tick(1.0)
    assert stats.errors == 1
    assert "HTTP 500" in stats.error_samples[0]
    analyst.tick(2.0)
    assert desk.posts == ["/fraud/api/reviews/7/decide"] * 2
    assert stats.events["review_confirmed_fraud"] == 1
    analyst.tick(10.0)  # decided once: never again
    assert len(desk.posts) == 2
