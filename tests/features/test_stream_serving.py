"""Stream views served at the request's instant from the window state: the server's own events
count, windows slide, the ttl nulls, and a vector is exact only when the processor has applied
every record that was in its input; on both state backends, with the embedded log."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
import redis

from events.backends.embedded import EmbeddedBus
from events.bus import Record
from features.definitions import CARD_VELOCITY, RIDER_ACTIVITY, ZONE_FRAUD
from features.offline import instant_requests, instant_values, rows_load
from features.state import Applied, RedisState, SqliteState, WindowState
from features.stream_serving import EXACT, STALE, Served, StreamServing
from features.windows import Row, value_at

LATENESS_US = 60_000_000
MINUTE = 60_000_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
GROUP = "stream-features-test"
VIEWS = (CARD_VELOCITY, RIDER_ACTIVITY, ZONE_FRAUD)


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def make_state(request, tmp_path) -> Iterator[Callable[[], WindowState]]:
    made: list[WindowState] = []

    def make() -> WindowState:
        if request.param == "redis":
            client = request.getfixturevalue("redis_client")
            url = request.getfixturevalue("redis_url")
            state = RedisState(
                redis.Redis.from_url(url), prefix=client.prefix, lateness_us=LATENESS_US
            )
        else:
            state = SqliteState(tmp_path / "state.sqlite3", lateness_us=LATENESS_US)
        made.append(state)
        return state

    yield make
    for state in made:
        state.close()


def payment(i: int, ts: int, *, card: str = "card-1", amount: int = 1000) -> Served:
    payload = {
        "event_id": f"p{i}",
        "card_id": card,
        "rider_id": "rider-1",
        "amount_cents": amount,
        "context": {"device_id": "d1"},
    }
    return Served("payments.authorized.v1", payload, f"p{i}", ts)


def card_row(i: int, ts: int, kind: str = "payment", **fields) -> Row:
    base = {"amount_cents": 1000, "rider_id": "rider-1", "device_id": "d1"}
    return Row("card_velocity", ("card-1",), f"c{i}", ts, kind, {**base, **fields})


def keys(card: str = "card-1", rider: str | None = "rider-1", zone: str | None = "z1") -> dict:
    return {
        "card_velocity": (card,),
        "rider_activity": None if rider is None else (rider,),
        "zone_fraud": None if zone is None else (zone,),
    }


def serving(state: WindowState, bus: EmbeddedBus | None, **kw) -> StreamServing:
    return StreamServing(state=state, bus=bus, group=GROUP, views=VIEWS, **kw)


def test_serve_read_adds_without_stamping_and_skips_unchanged_entities(make_state):
    state = make_state()
    zone = ("zone_fraud", ("z1",))
    state.add_and_read(
        rows=[Row("zone_fraud", ("z1",), "cb1", T0, "chargeback", {})],
        version="v1",
        marks={(GROUP, "trips.requested.v1", 0): {0: None, 4: T0}},
    )

    first = state.serve_read(
        rows=[card_row(1, T0 + 5)],
        entities=[("card_velocity", ("card-1",)), zone],
        known={},
        group=GROUP,
        partitions=[("trips.requested.v1", 0), ("trips.requested.v1", 1)],
    )
    again = state.serve_read(
        rows=[card_row(1, T0 + 5)],
        entities=[("card_velocity", ("card-1",)), zone],
        known={zone: "v1", ("card_velocity", ("card-1",)): None},
        group=GROUP,
        partitions=[("trips.requested.v1", 0)],
    )

    card_state = first.entities[("card_velocity", ("card-1",))]
    assert [r.event_id for r in card_state.rows] == ["c1"]
    assert card_state.version is None  # the server's add stamps no version
    assert first.entities[zone].version == "v1"
    assert first.applied == {("trips.requested.v1", 0): Applied(4, T0)}
    # Unchanged since cached: not read again; the card's version is still "never stamped".
    assert set(again.entities) == set()
    card_ref = ("card_velocity", ("card-1",))
    assert [r.event_id for r in state.read(entities=[card_ref])[card_ref].rows] == ["c1"]


def test_a_payment_counts_in_its_own_windows_and_windows_slide(make_state, tmp_path):
    state = make_state()
    bus = EmbeddedBus(tmp_path / "bus.sqlite3")
    server = serving(state, bus)

    burst = [payment(i, T0 + i * MINUTE) for i in range(3)]
    served = server.serve([keys()] * 3, [p.ts for p in burst], burst)
    later = T0 + 3 * HOUR
    idle = server.serve([keys()], [later], [])

    counts = [a["card_velocity"].values["card_payments_10m"] for a in served.answers]
    assert counts == [1, 2, 3]  # each counts itself and the earlier ones, not the later ones
    assert served.answers[2]["card_velocity"].values["card_amount_cents_1h"] == 3000
    assert idle.answers[0]["card_velocity"].values["card_payments_10m"] == 0
    assert idle.answers[0]["card_velocity"].values["card_payments_24h"] == 3
    assert idle.answers[0]["card_velocity"].latest_us == T0 + 2 * MINUTE
    # Nothing in the processor's other topics: every record there is applied.
    assert served.consistency == [EXACT] * 3
    assert idle.consistency == [EXACT]
    # A request naming no zone gets no zone row, and the rider never had an event.
    assert served.answers[0]["rider_activity"].status == "NOT_FOUND"


def test_a_card_idle_past_the_ttl_is_null(make_state, tmp_path):
    state = make_state()
    server = serving(state, EmbeddedBus(tmp_path / "bus.sqlite3"))
    server.serve([keys()], [T0], [payment(1, T0)])

    answer = server.serve([keys()], [T0 + 31 * DAY], []).answers[0]["card_velocity"]

    assert answer.values is None
    assert answer.status == "OUTSIDE_MAX_AGE"


def test_served_values_equal_value_at_over_the_same_rows(make_state, tmp_path):
    state = make_state()
    server = serving(state, EmbeddedBus(tmp_path / "bus.sqlite3"))
    state.add_and_read(
        rows=[card_row(i, T0 + i * 7 * MINUTE, amount_cents=100 * i) for i in range(20)]
        + [card_row(99, T0 - DAY, kind="card_added")],
        version="v1",
    )
    instants = [T0 + k * 23 * MINUTE for k in range(8)]

    served = server.serve([keys()] * len(instants), instants, [])

    rows = state.read(entities=[("card_velocity", ("card-1",))])[("card_velocity", ("card-1",))]
    for at, answer in zip(instants, served.answers, strict=True):
        expected, latest = value_at(CARD_VELOCITY, rows.rows, at, floor=rows.floor)
        assert answer["card_velocity"].values == expected
        assert answer["card_velocity"].latest_us == latest


def test_a_vector_is_stale_while_the_processor_has_not_applied_its_input(make_state, tmp_path):
    state = make_state()
    bus = EmbeddedBus(tmp_path / "bus.sqlite3")
    topic = "trips.requested.v1"
    bus.ensure_topics([topic], partitions=1)
    trip = {"event_id": "t1", "rider_id": "rider-1", "card_id": "card-1"}
    bus.producer().publish([Record(topic=topic, key="rider-1", value=json.dumps(trip).encode())])
    server = serving(state, bus, wait_s=0.05)
    at = T0 + MINUTE

    before = server.serve([keys()], [at], [payment(1, at)])
    # The processor applies the trip (offset 0) and records it got to offset 1.
    state.add_and_read(
        rows=[Row("rider_activity", ("rider-1",), "t1", T0, "trip", {"card_id": "card-1"})],
        version="v1",
        marks={(GROUP, topic, 0): {0: None, 1: T0}},
    )
    after = server.serve([keys()], [at], [payment(1, at)])

    assert before.consistency == [STALE]
    assert before.lag_ms[0] > 0
    assert before.waited_ms >= 50
    assert before.answers[0]["rider_activity"].status == "NOT_FOUND"
    assert after.consistency == [EXACT]
    assert after.lag_ms == [None]
    assert after.answers[0]["rider_activity"].values["rider_trips_1h"] == 1


def test_a_window_whose_rows_were_pruned_is_stale(make_state, tmp_path):
    state = make_state()
    server = serving(state, EmbeddedBus(tmp_path / "bus.sqlite3"))
    # A processor add two days on prunes the first row: its window is no longer computable.
    state.add_and_read(rows=[card_row(1, T0)], version="v1")
    state.add_and_read(rows=[card_row(2, T0 + 2 * DAY)], version="v2")

    served = server.serve([keys()] * 2, [T0 + MINUTE, T0 + 2 * DAY], [])

    assert served.consistency == [STALE, EXACT]


def test_a_zone_with_no_chargeback_in_the_last_hour_reads_0_online_and_offline(
    make_state, tmp_path
):
    """A chargeback two hours ago: the zone's 1-hour count slid back to 0, its 24-hour count
    holds it; the DuckDB engine over the same rows gives the same at the same instant."""
    state = make_state()
    chargeback = Row("zone_fraud", ("z1",), "cb1", T0, "chargeback", {})
    state.add_and_read(rows=[chargeback], version="v1")
    server = serving(state, EmbeddedBus(tmp_path / "bus.sqlite3"))
    at = T0 + 2 * HOUR

    online = server.serve([keys()], [at], [payment(1, at)]).answers[0]["zone_fraud"].values
    offline = instant_values(
        rows_load([chargeback], views=[ZONE_FRAUD]),
        ZONE_FRAUD,
        instant_requests(ZONE_FRAUD, [("z1",)], [at]),
    ).to_pylist()[0]

    assert (online["zone_chargebacks_1h"], online["zone_chargebacks_24h"]) == (0, 1)
    assert {f.name: offline[f.name] for f in ZONE_FRAUD.features} == online
