"""The DuckDB engine at arbitrary instants equals ``features.windows.value_at`` over the same
events, for every stream view: at event times (ties included), between them, long after the
last one (windows slid to empty), past the ttl, before the first, and for unknown entities."""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.definitions import STREAM_VIEWS, Aggregate, Ratio, View
from features.offline import history_load, instant_requests, instant_values, rows_load
from features.state import RedisState, SqliteState, WindowState
from features.windows import Row, value_at
from tests.features.probes import PROBE, US, by_key, probe_rows, reference, typed, unique
from tests.features.simulated import reference_rows, simulated_day

MINUTE = 60_000_000


@pytest.fixture(scope="module")
def day(tmp_path_factory) -> Path:
    return simulated_day(tmp_path_factory.mktemp("instants"))


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
    return a == b


@pytest.mark.parametrize("view", STREAM_VIEWS, ids=lambda v: v.name)
def test_instants_equal_value_at_over_the_events(day, view):
    events = reference_rows(day)
    entities = sorted(key for name, key in events if name == view.name)
    assert entities, view.name
    rng = random.Random(view.name)
    keys, at = [], []
    for key in rng.sample(entities, min(40, len(entities))):
        stamps = [row.ts for row in events[(view.name, key)]]
        first, last = min(stamps), max(stamps)
        ttl = int(view.ttl.total_seconds() * 1_000_000)
        for instant in (
            rng.choice(stamps),  # at an event: it and its peers count
            rng.randint(first, last),
            last + rng.randint(1, 90) * MINUTE,
            last + 3 * 60 * MINUTE,
            last + ttl,  # the last instant the view is served
            last + ttl + 1,
            first - 1,
        ):
            keys.append(key)
            at.append(instant)
    keys.append(("no-such-entity",) * len(view.join_keys))
    at.append(at[0])

    loaded = history_load(day, views=[view])
    table = instant_values(loaded, view, instant_requests(view, keys, at)).to_pylist()

    assert [row["request_id"] for row in table] == list(range(len(keys)))
    served = 0
    for key, instant, row in zip(keys, at, table, strict=True):
        expected, _ = value_at(view, events.get((view.name, key), []), instant)
        for f in view.features:
            want = None if expected is None else expected[f.name]
            assert _same(row[f.name], want), (view.name, key, instant, f.name)
        served += expected is not None
    # Both kinds of answer were checked: served values and nulls.
    assert 0 < served < len(keys)


# --- the property: random histories, random instants, both engines, both state backends ------

# Every windowed kind of the probe view, with an unbounded ``last`` (its latest pruned row is
# kept) and nothing else unbounded, so the state prunes and keeps a floor.
PROBE_WINDOWED = replace(
    PROBE,
    features=tuple(
        f
        for f in PROBE.features
        if not isinstance(f, Aggregate) or f.window is not None or f.agg == "last"
    ),
)
# A ttl of a few microseconds: instants past it read null.
PROBE_TTL = replace(PROBE, ttl=12 * US)
# Counts alone (and a ratio of two), which the SQL reads from running counts, not windows.
PROBE_COUNTS = replace(
    PROBE,
    ttl=12 * US,
    features=(
        *(f for f in PROBE.features if isinstance(f, Aggregate) and f.agg == "count"),
        Aggregate("count_b_3", "count", ("b",), window=3 * US),
        Ratio("a5_per_ab", "count_a_5", "count_ab"),
    ),
)
LATENESS_US = 3


@st.composite
def probe_instants(draw, rows: list[Row]) -> list[int]:
    """Instants at an event (its peers count), a microsecond either side, between events, long
    after the last one and before the first."""
    stamps = [r.ts for r in rows] or [0]
    near = st.sampled_from(stamps).flatmap(lambda ts: st.sampled_from([ts - 1, ts, ts + 1]))
    return draw(st.lists(near | st.integers(-2, 80), min_size=1, max_size=8))


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def state_factory(request, tmp_path) -> Iterator[Callable[[View], WindowState]]:
    """Return a factory of fresh, empty states of one backend (one per hypothesis example)."""
    made: list[WindowState] = []

    def make(view: View) -> WindowState:
        name = uuid.uuid4().hex[:8]
        if request.param == "redis":
            client = request.getfixturevalue("redis_client")
            url = request.getfixturevalue("redis_url")
            state = RedisState(
                redis.Redis.from_url(url),
                prefix=f"{client.prefix}{name}:",
                views=[view],
                lateness_us=LATENESS_US,
            )
        else:
            state = SqliteState(tmp_path / f"{name}.sqlite3", views=[view], lateness_us=LATENESS_US)
        made.append(state)
        return state

    yield make
    for state in made:
        state.close()


def _check_at_instants(view: View, rows: list[Row], instants: list[int], state: WindowState):
    kept = unique(rows)
    grouped = by_key(kept)
    keys = [*sorted(grouped), ("k-none",)]
    requests = [(key, at) for key in keys for at in instants]
    table = instant_values(
        rows_load(rows, views=[view]),
        view,
        instant_requests(view, [k for k, _ in requests], [at for _, at in requests]),
    ).to_pylist()
    # The state as a processor leaves it: rows added in a few batches in stream order, pruned.
    for start in range(0, len(rows), 5):
        state.add_and_read(rows=rows[start : start + 5], version=f"v{start}")
    held = state.read(entities=[(view.name, key) for key in keys])
    # The state's own evaluation (Redis: in its script), at every instant of every key.
    probed = state.serve_read(
        rows=[],
        entities=[],
        known={},
        group="g",
        partitions=[],
        probes={(view.name, key): instants for key in keys},
    ).evaluated
    window = state.retention[view.name].window_us
    for (key, at), row in zip(requests, table, strict=True):
        mine = grouped.get(key, [])
        latest = max((r.ts for r in mine if r.ts <= at), default=None)
        expired = latest is None or latest < at - view.ttl // US
        expected = None if expired else typed(reference(view, mine, at))
        # A count is never null where the view is served: all null is the view's null.
        got = (
            None
            if all(row[f.name] is None for f in view.features)
            else typed({f.name: row[f.name] for f in view.features})
        )
        assert got == expected, ("sql", key, at)
        python, _ = value_at(view, mine, at)
        assert (None if python is None else typed(python)) == expected, ("python", key, at)
        entity = held[(view.name, key)]
        from_state, latest = value_at(view, list(entity.rows), at, floor=entity.floor)
        # Evaluated in the store or in Python, the state's rows give one answer, complete or
        # not.
        answer = probed[((view.name, key), at)]
        assert (answer.values is None) == (from_state is None), ("probe", key, at)
        if from_state is not None:
            assert typed(answer.values) == typed(from_state), ("probe", key, at)
        assert (answer.latest, answer.floor) == (latest, entity.floor), ("probe", key, at)
        # The state claims every row an evaluation at ``at`` needs once the window before it
        # is past the floor; there it must give the same answer.
        if entity.floor is None or window is None or at - window >= entity.floor:
            assert (None if from_state is None else typed(from_state)) == expected, (
                "state",
                key,
                at,
            )


@pytest.mark.parametrize(
    "view",
    [PROBE, PROBE_WINDOWED, PROBE_TTL, PROBE_COUNTS],
    ids=["all", "windowed", "ttl", "counts"],
)
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_value_at_is_one_semantics_in_python_sql_and_the_state(view, state_factory, data):
    rows = data.draw(probe_rows())
    instants = data.draw(probe_instants(rows))
    _check_at_instants(view, rows, instants, state_factory(view))
