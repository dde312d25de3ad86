"""The window state: the Redis and SQLite backends read the same for the same adds; adds are
idempotent; pruning keeps what the windows need; add-then-read is one transaction."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from features.definitions import CARD, CARD_VELOCITY, PLATFORM_FRAUD, Aggregate, Source, View
from features.state import (
    MARKS_KEPT,
    EntityRows,
    RedisState,
    SqliteState,
    WindowState,
    retention,
)
from features.state.base import fields_text, key_text
from features.windows import Row

LATENESS_US = 60_000_000
HOUR = 3_600_000_000
DAY = 24 * HOUR
CARD_KEEP = DAY + LATENESS_US  # card_velocity's longest window (24 h) plus the lateness
T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z


def card(event_id: str, ts: int, kind: str = "payment", **fields) -> Row:
    return Row("card_velocity", ("card-1",), event_id, ts, kind, fields)


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def make_state(request, tmp_path) -> Iterator[Callable[..., WindowState]]:
    """Return a factory of states of one backend, all on the same store."""
    made: list[WindowState] = []

    def make(**kw) -> WindowState:
        kw.setdefault("lateness_us", LATENESS_US)
        if request.param == "redis":
            client = request.getfixturevalue("redis_client")
            url = request.getfixturevalue("redis_url")
            state = RedisState(redis.Redis.from_url(url), prefix=client.prefix, **kw)
        else:
            state = SqliteState(tmp_path / "state.sqlite3", **kw)
        made.append(state)
        return state

    yield make
    for state in made:
        state.close()


def test_retention_is_the_longest_window_plus_the_lateness():
    assert retention(CARD_VELOCITY, lateness_us=LATENESS_US).keep_us == CARD_KEEP
    assert retention(CARD_VELOCITY, lateness_us=LATENESS_US).last_kinds == ("card_added",)
    assert retention(PLATFORM_FRAUD, lateness_us=0).keep_us == DAY
    assert retention(PLATFORM_FRAUD, lateness_us=0).last_kinds == ()


def test_an_add_reads_back_every_touched_entity(make_state):
    state = make_state()
    platform = Row("platform_fraud", ("all",), "e9", T0, "chargeback", {})

    added = state.add_and_read(
        rows=[card("e2", T0 + 5, amount_cents=7), card("e1", T0 + 5, rider_id=None), platform],
        version="v1",
    )

    assert added.entities == {
        ("card_velocity", ("card-1",)): EntityRows(
            rows=(card("e1", T0 + 5, rider_id=None), card("e2", T0 + 5, amount_cents=7)),
            floor=None,
            version="v1",
        ),
        ("platform_fraud", ("all",)): EntityRows(rows=(platform,), floor=None, version="v1"),
    }


def test_adding_a_row_again_changes_nothing_but_the_version_and_the_clock(make_state):
    state = make_state()
    rows = [card("e1", T0, amount_cents=5), card("e2", T0 + HOUR, amount_cents=6)]
    first = state.add_and_read(rows=rows, version="v1")

    again = state.add_and_read(rows=rows[:1], version="v2")

    ref = ("card_velocity", ("card-1",))
    assert again.entities[ref].rows == first.entities[ref].rows == tuple(rows)
    assert again.entities[ref].version == "v2"
    assert again.clock > first.clock
    assert state.read(entities=[ref])[ref] == again.entities[ref]


def test_pruning_keeps_the_window_and_the_latest_pruned_row_of_a_last_kind(make_state):
    state = make_state()
    ref = ("card_velocity", ("card-1",))
    state.add_and_read(
        rows=[
            card("a0", T0, "card_added"),
            card("a1", T0 + HOUR, "card_added"),
            card("p1", T0 + HOUR, amount_cents=1),
            card("p2", T0 + 2 * HOUR, amount_cents=2),
        ],
        version="v1",
    )

    # The cutoff is T0 + 1 h exactly: rows at or before it go.
    added = state.add_and_read(rows=[card("p3", T0 + HOUR + CARD_KEEP)], version="v2")

    assert added.entities[ref] == EntityRows(
        rows=(
            card("a1", T0 + HOUR, "card_added"),
            card("p2", T0 + 2 * HOUR, amount_cents=2),
            card("p3", T0 + HOUR + CARD_KEEP),
        ),
        floor=T0 + HOUR,
        version="v2",
    )
    # An earlier add does not lower the floor; a later pruned card_added replaces a1.
    state.add_and_read(rows=[card("a2", T0 + 2 * HOUR, "card_added")], version="v3")
    added = state.add_and_read(rows=[card("p4", T0 + 3 * HOUR + CARD_KEEP)], version="v4")
    assert added.entities[ref].floor == T0 + 2 * HOUR
    assert [r.event_id for r in added.entities[ref].rows] == ["a2", "p3", "p4"]


def test_a_view_with_an_unbounded_count_keeps_every_row(make_state):
    lifetime = View(
        name="card_lifetime",
        entities=(CARD,),
        mode="stream",
        description="Every payment ever.",
        sources=(Source("payments.authorized.v1", kind="payment", keys=("card_id",)),),
        features=(
            Aggregate("payments_ever", "count", ("payment",)),
            Aggregate("payments_1h", "count", ("payment",), window=timedelta(hours=1)),
        ),
    )
    state = make_state(views=(lifetime,))
    old = Row("card_lifetime", ("c",), "old", T0, "payment", {})
    new = Row("card_lifetime", ("c",), "new", T0 + 400 * DAY, "payment", {})
    state.add_and_read(rows=[old], version="v1")

    added = state.add_and_read(rows=[new], version="v2")

    assert added.entities[("card_lifetime", ("c",))].rows == (old, new)
    assert added.entities[("card_lifetime", ("c",))].floor is None


def test_marks_keep_the_latest_entries_of_each_partition(make_state):
    state = make_state()
    state.add_and_read(
        rows=[],
        version="v1",
        marks={("g", "t", 0): {0: None, 10: T0}, ("g", "t", 1): {0: None, 3: T0 + 1}},
    )

    for n in range(1, MARKS_KEPT + 1):
        state.add_and_read(
            rows=[], version="v2", marks={("g", "t", 0): {10 * n: T0 + n - 1, 10 * n + 10: T0 + n}}
        )

    assert state.marks(group="g", topic="t", partition=0) == {
        10 * n: T0 + n - 1 for n in range(2, MARKS_KEPT + 2)
    }
    assert state.marks(group="g", topic="t", partition=1) == {0: None, 3: T0 + 1}
    assert state.marks(group="other", topic="t", partition=0) == {}


def test_the_clock_increases_across_instances_and_versions_name_the_last_add(make_state):
    one, two = make_state(), make_state()
    ref = ("card_velocity", ("card-1",))
    clocks = []
    for i in range(20):
        state = (one, two)[i % 2]
        clocks.append(state.add_and_read(rows=[card(f"e{i}", T0 + i)], version=f"v{i}").clock)

    assert clocks == sorted(set(clocks))
    assert one.versions(entities=[ref]) == two.versions(entities=[ref]) == {ref: "v19"}
    assert one.versions(entities=[("card_velocity", ("none",))]) == {
        ("card_velocity", ("none",)): None
    }


def test_two_writers_of_one_entity_never_both_miss_each_other(make_state):
    states = [make_state(), make_state()]
    ref = ("platform_fraud", ("all",))
    rounds = 60
    results: dict[tuple[int, int], tuple[int, set[str]]] = {}
    barrier = threading.Barrier(2)

    def write(n: int) -> None:
        for i in range(rounds):
            barrier.wait()
            row = Row("platform_fraud", ("all",), f"w{n}-{i}", T0 + i, "chargeback", {})
            added = states[n].add_and_read(rows=[row], version=f"w{n}-{i}")
            results[(n, i)] = (added.clock, {r.event_id for r in added.entities[ref].rows})

    threads = [threading.Thread(target=write, args=(n,)) for n in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    for i in range(rounds):
        (clock0, seen0), (clock1, seen1) = results[(0, i)], results[(1, i)]
        later, other = (seen1, f"w0-{i}") if clock1 > clock0 else (seen0, f"w1-{i}")
        assert other in later, f"round {i}: the later add did not see the other's row"


@pytest.mark.redis
def test_both_backends_read_the_same_for_the_same_adds(redis_client, tmp_path):
    sqlite = SqliteState(tmp_path / "state.sqlite3", lateness_us=LATENESS_US)
    redis_state = RedisState(redis_client, prefix=redis_client.prefix, lateness_us=LATENESS_US)
    batches = [
        [card("a0", T0, "card_added"), card("p0", T0, amount_cents=1, rider_id="r")],
        [card("p1", T0 + HOUR, amount_cents=2), card("p0", T0, amount_cents=1, rider_id="r")],
        [card("a1", T0 + 2 * HOUR, "card_added"), card("d1", T0 + 2 * HOUR, "decline")],
        [card("p2", T0 + HOUR + CARD_KEEP, device_id="d")],
        [card("p3", T0 + 3 * HOUR + CARD_KEEP)],
        [card("late", T0 + 5, amount_cents=9)],
        [Row("driver_rider_pair", ("driver-1", "rider-2"), "t1", T0, "trip", {})],
    ]
    for n, rows in enumerate(batches):
        read_sqlite = sqlite.add_and_read(rows=rows, version=f"v{n}").entities
        read_redis = redis_state.add_and_read(rows=rows, version=f"v{n}").entities
        assert read_sqlite == read_redis, f"after add {n}"
    refs = [("card_velocity", ("card-1",)), ("driver_rider_pair", ("driver-1", "rider-2"))]
    assert sqlite.read(entities=refs) == redis_state.read(entities=refs)
    assert [r.event_id for r in sqlite.read(entities=refs)[refs[0]].rows] == [
        "late",
        "a1",
        "p2",
        "p3",
    ]


def test_an_add_prunes_no_row_its_own_or_a_later_row_still_needs(tmp_path):
    state = SqliteState(tmp_path / "state.sqlite3", lateness_us=LATENESS_US)
    rows = [card("p1", T0), card("p2", T0 + 3 * DAY)]

    # The latest row keeps the window plus the lateness behind it, the earliest the window.
    assert state.cutoff("card_velocity", rows[1:]) == T0 + 3 * DAY - CARD_KEEP
    assert state.cutoff("card_velocity", rows) == T0 - DAY
    # A partition whose next rows may come at T0 + 1 h (its latest, less the lateness) keeps
    # the window behind that.
    assert state.cutoff("card_velocity", rows[1:], low_watermark=T0 + HOUR) == T0 + HOUR - DAY


@given(st.lists(st.text() | st.from_regex(r"[ -~]*", fullmatch=True), min_size=1, max_size=3))
def test_an_entity_key_is_written_as_json_writes_it(key):
    # The key names of every store ever written (by processors of earlier releases too) must
    # not change: the fast path writes exactly what the JSON encoder does.
    assert key_text(tuple(key)) == json.dumps(key, separators=(",", ":"))


_VALUES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.from_regex(r"[ -~]*", fullmatch=True)
)


@given(st.dictionaries(st.from_regex(r"[a-z_]{1,12}", fullmatch=True), _VALUES, max_size=5))
def test_a_row_s_fields_are_written_as_json_writes_them(fields):
    # Part of a row's identity in the state (its member): rows written by earlier releases,
    # which used the JSON encoder alone, must read as the same rows.
    assert fields_text(fields) == json.dumps(fields, sort_keys=True, separators=(",", ":"))
