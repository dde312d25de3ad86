"""Probe views and random histories for the engines' property tests: every aggregation kind on
microsecond windows, and a brute-force reference that reads the semantics directly, independent of
``features.windows``."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from datetime import timedelta

from hypothesis import strategies as st

from features.definitions import CARD, DRIVER, OCCURRED_AT, RIDER, Aggregate, Ratio, Source, View
from features.windows import Row

US = timedelta(microseconds=1)

# Every aggregation kind, with and without windows, over two kinds of event; windows of a few
# microseconds so random timestamps in 0..40 µs fall in and out of them, with ties.
PROBE = View(
    name="probe",
    entities=(CARD,),
    mode="stream",
    description="Every aggregation kind.",
    sources=(
        Source("probe.a", kind="a", keys=("card_id",), fields={"n": "n", "s": "s", "x": "x"}),
        Source("probe.b", kind="b", keys=("card_id",), fields={"x": "x"}),
    ),
    features=(
        Aggregate("count_a_5", "count", ("a",), window=5 * US),
        Aggregate("count_ab", "count", ("a", "b")),
        Aggregate("sum_n_7", "sum", ("a",), window=7 * US, field="n"),
        Aggregate("sum_n", "sum", ("a",), field="n"),
        Aggregate("avg_n_9", "avg", ("a",), window=9 * US, field="n", dtype="float64"),
        Aggregate("std_n_9", "std", ("a",), window=9 * US, field="n", dtype="float64"),
        Aggregate("std_n", "std", ("a",), field="n", dtype="float64"),
        Aggregate("distinct_s_6", "count_distinct", ("a",), window=6 * US, field="s"),
        Aggregate("distinct_n", "count_distinct", ("a", "b"), field="n"),
        Aggregate("last_x", "last", ("a", "b"), field="x", dtype="float64"),
        Aggregate("last_n_4", "last", ("a",), window=4 * US, field="n"),
        Aggregate("last_at_b", "last", ("b",), field=OCCURRED_AT, dtype="float64"),
        Aggregate("median_x_9", "median", ("a", "b"), window=9 * US, field="x", dtype="float64"),
        Aggregate("median_n", "median", ("a",), field="n", dtype="float64"),
        Aggregate("age_ab", "age_days", ("a", "b"), dtype="float64"),
        Aggregate("age_b_8", "age_days", ("b",), window=8 * US, dtype="float64"),
        Aggregate("prev_a_6", "since_previous", ("a",), window=6 * US, dtype="float64"),
        Aggregate("prev_ab", "since_previous", ("a", "b"), dtype="float64"),
        Ratio("sum_per_count", "sum_n_7", "count_a_5"),
    ),
)
# Two entities: the key is the pair.
PAIR_PROBE = View(
    name="pair_probe",
    entities=(DRIVER, RIDER),
    mode="stream",
    description="A two-entity key.",
    sources=(Source("probe.a", kind="a", keys=("driver_id", "rider_id"), fields={"n": "n"}),),
    features=(
        Aggregate("pair_count_6", "count", ("a",), window=6 * US),
        Aggregate("pair_sum", "sum", ("a",), field="n"),
    ),
)


# --- the brute-force reference: a direct reading of the semantics, independent of windows.py ---


def reference_value(feature: Aggregate, rows: list[Row], at: int):
    window = None if feature.window is None else feature.window // US
    chosen = []
    for row in rows:
        if row.kind not in feature.kinds or row.ts > at:
            continue
        if window is not None and not row.ts > at - window:
            continue
        chosen.append(row)

    def value(row):
        return row.ts / 1_000_000 if feature.field == OCCURRED_AT else row.fields.get(feature.field)

    present = [value(r) for r in chosen if value(r) is not None]
    if feature.agg == "count":
        return len(chosen)
    if feature.agg == "sum":
        total = 0
        for v in present:
            total += v
        return int(total) if feature.dtype == "int64" else float(total)
    if feature.agg == "count_distinct":
        return len(set(present))
    if feature.agg == "last":
        if not chosen:
            return None
        best = chosen[0]
        for row in chosen[1:]:
            if row.ts > best.ts or (row.ts == best.ts and row.event_id > best.event_id):
                best = row
        v = value(best)
        if v is None:
            return None
        return int(v) if feature.dtype == "int64" else float(v)
    if feature.agg == "age_days":
        if not chosen:
            return None
        return (at - min(r.ts for r in chosen)) / 86_400_000_000
    if feature.agg == "since_previous":
        before = [r.ts for r in chosen if r.ts < at]
        return (at - max(before)) / 1_000_000 if before else None
    if not present:
        return None
    if feature.agg == "avg":
        return sum(present) / len(present)
    if feature.agg == "std":
        # The declared formula (features.definitions.Aggregate): exact integer sums, then floats.
        mean = float(sum(present)) / len(present)
        variance = float(sum(v * v for v in present)) / len(present) - mean * mean
        return math.sqrt(variance) if variance > 0 else 0.0
    if feature.agg == "median":
        return float(statistics.median(present))
    raise AssertionError(feature.agg)


def reference(view: View, rows: list[Row], at: int) -> dict:
    values = {f.name: reference_value(f, rows, at) for f in view.aggregates}
    for f in view.features:
        if isinstance(f, Ratio):
            n, d = values[f.numerator], values[f.denominator]
            values[f.name] = None if n is None or not d else n / d
    return values


def typed(values: dict) -> dict:
    """Values with their types, so 3 and 3.0 differ."""
    return {name: (type(v).__name__, v) for name, v in values.items()}


def unique(rows: list[Row]) -> list[Row]:
    seen, kept = set(), []
    for row in rows:
        identity = (row.view, row.key, row.event_id, row.kind)
        if identity not in seen:
            seen.add(identity)
            kept.append(row)
    return kept


def by_key(rows: list[Row]) -> dict[tuple[str, ...], list[Row]]:
    grouped: dict[tuple[str, ...], list[Row]] = defaultdict(list)
    for row in rows:
        grouped[row.key].append(row)
    return grouped


# --- random histories ---------------------------------------------------------------------


@st.composite
def probe_rows(draw) -> list[Row]:
    """A small history of the probe view: few keys, timestamps with ties, values with None,
    events repeated (an archive replayed) and rows in any order."""
    count = draw(st.integers(0, 25))
    rows = []
    for i in range(count):
        kind = draw(st.sampled_from(["a", "b"]))
        # Decimals like 0.1 and 0.7 tell (a + b) / 2 from a + (b - a) / 2 in the last bit.
        decimals = st.sampled_from([0.1, 0.3, 0.7, 2.5])
        fields = {"x": draw(st.none() | decimals | st.floats(-50, 50, allow_nan=False))}
        if kind == "a":
            fields["n"] = draw(st.none() | st.integers(-20, 1000))
            fields["s"] = draw(st.none() | st.sampled_from(["p", "q", "r"]))
        rows.append(
            Row(
                "probe",
                (draw(st.sampled_from(["k1", "k2", "k3"])),),
                f"e{draw(st.integers(0, 99)):02d}-{i}",
                draw(st.integers(0, 40)),
                kind,
                fields,
            )
        )
    repeats = draw(st.lists(st.sampled_from(rows), max_size=4)) if rows else []
    return draw(st.permutations(rows + repeats))


@st.composite
def pair_rows(draw) -> list[Row]:
    count = draw(st.integers(0, 15))
    return [
        Row(
            "pair_probe",
            (draw(st.sampled_from(["d1", "d2"])), draw(st.sampled_from(["r1", "r2"]))),
            f"e{i}",
            draw(st.integers(0, 20)),
            "a",
            {"n": draw(st.none() | st.integers(0, 9))},
        )
        for i in range(count)
    ]
