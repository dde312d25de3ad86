"""Every feature, declared once: what it aggregates, over which events, keyed by which entity.

This module is the single source of feature logic. Three things read it and none of them holds
feature logic of its own:

- the stream processor (``features.processor``) executes the stream views incrementally, event by
  event, for the online store;
- the DuckDB engine (``features.offline``) executes the same declarations over the event history
  for backfill, batch views and training sets;
- the Feast repo (``features/feature_repo``) derives entities, views and feature services from it.

Semantics of a window feature (both engines implement exactly this):

- the value *at instant t* aggregates the entity's events whose event time ``ts`` satisfies
  ``t - window < ts <= t`` (microsecond timestamps; events at ``t`` itself count, ties included);
  a feature without a window aggregates every event up to ``t``;
- a stream view has one row per (entity, event): the view's values at that event's time, stamped
  with it. The online store holds the entity's latest row; a point-in-time join picks the latest
  row at or before the spine's instant, so training sees exactly what serving saw at that instant;
- a batch view is evaluated at a snapshot instant for every entity and stamped with that instant.

Pure Python: no Django, no Feast, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Any, Literal

from events.contracts import chargeback_is_fraud

Agg = Literal[
    "count", "sum", "avg", "std", "count_distinct", "last", "median", "age_days", "since_previous"
]
Dtype = Literal["int64", "float64"]
Mode = Literal["stream", "batch"]

# The timestamp of the event itself, in seconds since the epoch: a field name every source has.
OCCURRED_AT = "occurred_at"
# Key value of the single platform-wide entity.
PLATFORM_KEY = "all"

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Entity:
    name: str
    join_key: str
    description: str


CARD = Entity("card", "card_id", "A tokenised payment card.")
RIDER = Entity("rider", "rider_id", "A rider account.")
DRIVER = Entity("driver", "driver_id", "A driver.")
ZONE = Entity("zone", "zone_id", "A pickup zone of the city.")
PLATFORM = Entity("platform", "platform_id", f"The whole platform: one key, {PLATFORM_KEY!r}.")
DEVICE = Entity("device", "device_id", "A device a rider paid from.")
IP = Entity("ip", "ip_address", "An IP address a payment came from.")
ENTITIES = (CARD, RIDER, DRIVER, ZONE, PLATFORM, DEVICE, IP)


@dataclass(frozen=True)
class Source:
    """One topic feeding a view: which payload fields give the view's keys and values.

    ``keys`` holds one payload path per entity of the view, in order; a dotted path reaches into
    nested objects (``pickup.zone``); a path starting with ``=`` is a constant (``=all``).
    ``fields`` maps a field name the view's features aggregate to a payload path, or to a
    ``Derived`` computation. ``where`` keeps only events whose payload path equals the value
    (``None`` as the value: the path must be present and not null; a function: it must
    accept the value). ``kind`` labels the events,
    so features count one kind of event and not another.
    """

    topic: str
    kind: str
    keys: tuple[str, ...]
    fields: Mapping[str, str | Derived] = field(default_factory=dict)
    where: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Derived:
    """A field computed from payload paths: ``fn(*values)``, or ``None`` when it cannot be."""

    name: str
    paths: tuple[str, ...]
    fn: Callable[..., float | None]


@dataclass(frozen=True)
class Aggregate:
    """A feature aggregating a view's events of ``kinds``.

    ``field`` names a source field (or ``OCCURRED_AT``): summed, averaged, its population
    standard deviation (``std``: from the exact count, sum and sum of squares, so equal in every
    engine for an integer field such as an amount in cents), counted distinct, taken from the
    latest event (``last``: ties broken by the greater event id), the median, or
    for ``age_days`` the days from the earliest such event to the evaluation instant;
    ``since_previous`` is the seconds from the latest such event strictly before the instant
    (an event at the instant itself, the payment being scored, is not its own previous one).
    ``count``, ``age_days`` and ``since_previous`` ignore ``field``; a ``None`` value is
    skipped by every other aggregation. ``sum``, ``count`` and ``count_distinct`` of nothing
    are 0; the others are ``None``.

    ``describe`` renders a value in plain words for explanations: ``{value}`` is replaced.
    """

    name: str
    agg: Agg
    kinds: tuple[str, ...]
    window: timedelta | None = None
    field: str | None = None
    dtype: Dtype = "int64"
    describe: str = ""


@dataclass(frozen=True)
class Ratio:
    """``numerator / denominator`` of two features of the same view; ``None`` when the
    denominator is 0 or either is missing."""

    name: str
    numerator: str
    denominator: str
    describe: str = ""
    dtype: Dtype = "float64"


Feature = Aggregate | Ratio


@dataclass(frozen=True)
class View:
    name: str
    entities: tuple[Entity, ...]
    sources: tuple[Source, ...]
    features: tuple[Feature, ...]
    mode: Mode
    description: str
    # How long a row stays servable after its timestamp (Feast's ttl).
    ttl: timedelta = timedelta(days=30)

    @property
    def join_keys(self) -> tuple[str, ...]:
        return tuple(entity.join_key for entity in self.entities)

    @property
    def aggregates(self) -> tuple[Aggregate, ...]:
        return tuple(f for f in self.features if isinstance(f, Aggregate))

    @property
    def horizon(self) -> timedelta | None:
        """The longest window of the view, ``None`` when a feature needs all history."""
        windows = [a.window for a in self.aggregates]
        return None if any(w is None for w in windows) else max(windows)

    def source_fields(self) -> tuple[str, ...]:
        """Every field name the view's sources provide, sorted."""
        return tuple(sorted({name for s in self.sources for name in s.fields}))


def _per_km(fare_cents: float | None, distance_km: float | None) -> float | None:
    if fare_cents is None or not distance_km:
        return None
    return fare_cents / distance_km


FARE_PER_KM = Derived("fare_per_km", ("fare_cents", "distance_km"), _per_km)


def _windows(
    prefix: str, agg: Agg, kinds: tuple[str, ...], windows: Mapping[str, timedelta], **kw: Any
) -> tuple[Aggregate, ...]:
    describe = kw.pop("describe", "")
    return tuple(
        Aggregate(
            f"{prefix}_{label}",
            agg,
            kinds,
            window=window,
            describe=describe.replace("{window}", _spoken(window)),
            **kw,
        )
        for label, window in windows.items()
    )


def _spoken(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            n = seconds // size
            return f"{unit}" if n == 1 else f"{n} {unit}s"
    return f"{seconds} seconds"


CARD_PAYMENT_SOURCE = Source(
    "payments.authorized.v1",
    kind="payment",
    keys=("card_id",),
    fields={
        "amount_cents": "amount_cents",
        "rider_id": "rider_id",
        "device_id": "context.device_id",
    },
)

CARD_VELOCITY = View(
    name="card_velocity",
    entities=(CARD,),
    mode="stream",
    description="How fast a card is being used: payments, amounts, declines, riders, devices.",
    sources=(
        CARD_PAYMENT_SOURCE,
        Source("payments.declined.v1", kind="decline", keys=("card_id",)),
        Source("cards.added.v1", kind="card_added", keys=("card_id",)),
    ),
    features=(
        *_windows(
            "card_payments",
            "count",
            ("payment",),
            {"10m": 10 * MINUTE, "1h": HOUR, "24h": DAY},
            describe="{value} payments on this card in the last {window}",
        ),
        *_windows(
            "card_amount_cents",
            "sum",
            ("payment",),
            {"1h": HOUR, "24h": DAY},
            field="amount_cents",
            describe="{value} charged to this card in the last {window}",
        ),
        Aggregate(
            "card_declines_1h",
            "count",
            ("decline",),
            window=HOUR,
            describe="{value} declined payments on this card in the last hour",
        ),
        Aggregate(
            "card_distinct_riders_24h",
            "count_distinct",
            ("payment",),
            window=DAY,
            field="rider_id",
            describe="{value} different riders used this card in the last day",
        ),
        Aggregate(
            "card_distinct_devices_24h",
            "count_distinct",
            ("payment",),
            window=DAY,
            field="device_id",
            describe="{value} different devices used this card in the last day",
        ),
        Aggregate(
            "card_added_at",
            "last",
            ("card_added",),
            field=OCCURRED_AT,
            dtype="float64",
            describe="card added at {value}",
        ),
    ),
)

CARD_RECENCY = View(
    name="card_recency",
    entities=(CARD,),
    mode="stream",
    description="How soon after its previous payment a card pays again.",
    sources=(Source("payments.authorized.v1", kind="payment", keys=("card_id",)),),
    features=(
        Aggregate(
            "card_seconds_since_previous_payment",
            "since_previous",
            ("payment",),
            window=DAY,
            dtype="float64",
            describe="the card's previous payment was {value} seconds before this one",
        ),
    ),
)

RIDER_ACTIVITY = View(
    name="rider_activity",
    entities=(RIDER,),
    mode="stream",
    description="What a rider has been doing: trips, cancellations, cards, devices, sign-up.",
    sources=(
        Source(
            "trips.requested.v1", kind="trip", keys=("rider_id",), fields={"card_id": "card_id"}
        ),
        Source(
            "trips.cancelled.v1",
            kind="cancel",
            keys=("rider_id",),
            where={"cancelled_by": "rider"},
        ),
        Source("riders.device_changed.v1", kind="device_change", keys=("rider_id",)),
        Source("riders.signed_up.v1", kind="signup", keys=("rider_id",)),
    ),
    features=(
        *_windows(
            "rider_trips",
            "count",
            ("trip",),
            {"1h": HOUR, "24h": DAY},
            describe="{value} trips requested by this rider in the last {window}",
        ),
        *_windows(
            "rider_cancellations",
            "count",
            ("cancel",),
            {"1h": HOUR, "24h": DAY},
            describe="{value} trips cancelled by this rider in the last {window}",
        ),
        Aggregate(
            "rider_distinct_cards_24h",
            "count_distinct",
            ("trip",),
            window=DAY,
            field="card_id",
            describe="{value} different cards used by this rider in the last day",
        ),
        Aggregate(
            "rider_device_changes_24h",
            "count",
            ("device_change",),
            window=DAY,
            describe="{value} device changes by this rider in the last day",
        ),
        Aggregate(
            "rider_signed_up_at",
            "last",
            ("signup",),
            field=OCCURRED_AT,
            dtype="float64",
            describe="signed up at {value}",
        ),
    ),
)

DRIVER_ACTIVITY = View(
    name="driver_activity",
    entities=(DRIVER,),
    mode="stream",
    description="A driver's recent work: trips, riders served, cancellations.",
    sources=(
        Source(
            "trips.completed.v1", kind="trip", keys=("driver_id",), fields={"rider_id": "rider_id"}
        ),
        Source("trips.assigned.v1", kind="assignment", keys=("driver_id",)),
        Source("trips.cancelled.v1", kind="cancel", keys=("driver_id",), where={"driver_id": None}),
    ),
    features=(
        Aggregate(
            "driver_trips_24h",
            "count",
            ("trip",),
            window=DAY,
            describe="{value} trips completed by this driver in the last day",
        ),
        Aggregate(
            "driver_distinct_riders_7d",
            "count_distinct",
            ("trip",),
            window=7 * DAY,
            field="rider_id",
            describe="{value} different riders driven by this driver in the last 7 days",
        ),
        Aggregate("driver_assignments_7d", "count", ("assignment",), window=7 * DAY),
        Aggregate("driver_cancellations_7d", "count", ("cancel",), window=7 * DAY),
        Ratio(
            "driver_cancellation_rate_7d",
            "driver_cancellations_7d",
            "driver_assignments_7d",
            describe="{value} of this driver's trips were cancelled in the last 7 days",
        ),
    ),
)

DRIVER_RIDER_PAIR = View(
    name="driver_rider_pair",
    entities=(DRIVER, RIDER),
    mode="stream",
    description="How often one driver has driven one rider: collusion shows up here.",
    sources=(Source("trips.completed.v1", kind="trip", keys=("driver_id", "rider_id")),),
    features=(
        Aggregate(
            "pair_trips_7d",
            "count",
            ("trip",),
            window=7 * DAY,
            describe="{value} trips with this same driver and rider in the last 7 days",
        ),
    ),
)


def _fraud_view(entity: Entity, key_path: str, scope: str, where_path: str | None) -> View:
    """Recent in-app fraud around one entity: chargebacks filed and fraud confirmed by analysts."""
    where = {where_path: None} if where_path else {}
    return View(
        name=f"{entity.name}_fraud",
        entities=(entity,),
        mode="stream",
        description=f"Recent fraud {scope}: chargebacks and analyst-confirmed fraud.",
        sources=(
            Source("labels.chargeback_filed.v1", kind="chargeback", keys=(key_path,), where=where),
            Source(
                "reviews.decided.v1",
                kind="confirmed_fraud",
                keys=(key_path,),
                where={**where, "decision": "confirmed_fraud"},
            ),
        ),
        features=(
            *_windows(
                f"{entity.name}_chargebacks",
                "count",
                ("chargeback",),
                {"1h": HOUR, "24h": DAY},
                describe=f"{{value}} chargebacks {scope} in the last {{window}}",
            ),
            *_windows(
                f"{entity.name}_confirmed_fraud",
                "count",
                ("confirmed_fraud",),
                {"1h": HOUR, "24h": DAY},
                describe=f"{{value}} payments confirmed as fraud {scope} in the last {{window}}",
            ),
        ),
    )


ZONE_FRAUD = _fraud_view(ZONE, "pickup_zone", "in this pickup zone", "pickup_zone")
DRIVER_FRAUD = _fraud_view(DRIVER, "driver_id", "on this driver's trips", "driver_id")
PLATFORM_FRAUD = _fraud_view(PLATFORM, f"={PLATFORM_KEY}", "on the whole platform", None)

RIDER_PROFILE = View(
    name="rider_profile",
    entities=(RIDER,),
    mode="batch",
    ttl=timedelta(days=3),
    description="A rider's long-run history, materialised on a schedule.",
    sources=(
        Source(
            "trips.completed.v1",
            kind="trip",
            keys=("rider_id",),
            fields={"fare_cents": "fare_cents"},
        ),
        Source("labels.chargeback_filed.v1", kind="chargeback", keys=("rider_id",)),
    ),
    features=(
        Aggregate(
            "rider_lifetime_trips",
            "count",
            ("trip",),
            describe="{value} trips completed by this rider in all",
        ),
        Aggregate(
            "rider_lifetime_chargebacks",
            "count",
            ("chargeback",),
            describe="{value} chargebacks on this rider's payments in all",
        ),
        Aggregate(
            "rider_avg_fare_cents_30d",
            "avg",
            ("trip",),
            window=30 * DAY,
            field="fare_cents",
            dtype="float64",
            describe="this rider's average fare is {value}",
        ),
    ),
)

CARD_PROFILE = View(
    name="card_profile",
    entities=(CARD,),
    mode="batch",
    ttl=timedelta(days=3),
    description="How long a card has been known, materialised on a schedule.",
    sources=(
        Source("cards.added.v1", kind="seen", keys=("card_id",)),
        Source("payments.authorized.v1", kind="seen", keys=("card_id",)),
    ),
    features=(
        Aggregate(
            "card_age_days",
            "age_days",
            ("seen",),
            dtype="float64",
            describe="this card was first seen {value} days ago",
        ),
    ),
)

DRIVER_PROFILE = View(
    name="driver_profile",
    entities=(DRIVER,),
    mode="batch",
    ttl=timedelta(days=3),
    description="How long a driver has been driving, materialised on a schedule.",
    sources=(Source("trips.assigned.v1", kind="seen", keys=("driver_id",)),),
    features=(
        Aggregate(
            "driver_tenure_days",
            "age_days",
            ("seen",),
            dtype="float64",
            describe="this driver's first trip was {value} days ago",
        ),
    ),
)

ZONE_PROFILE = View(
    name="zone_profile",
    entities=(ZONE,),
    mode="batch",
    ttl=timedelta(days=3),
    description="What trips usually cost in a pickup zone, materialised on a schedule.",
    sources=(
        Source(
            "trips.requested.v1",
            kind="trip",
            keys=("pickup.zone",),
            fields={"fare_per_km": FARE_PER_KM},
        ),
    ),
    features=(
        Aggregate(
            "zone_median_fare_per_km_30d",
            "median",
            ("trip",),
            window=30 * DAY,
            field="fare_per_km",
            dtype="float64",
            describe="the median fare in this zone is {value} per km",
        ),
    ),
)


def _spending_view(entity: Entity, key_path: str, whose: str) -> View:
    """A card's or a rider's spending over a week and a month: how many payments, their mean
    and spread, so a payment's amount can be placed in its history (``features.ondemand``'s
    z-scores). Batch: a month of every card's payments is more than the stream state should
    hold row by row (docs/features.md, Long windows); the last day is the stream's
    (``card_velocity``)."""
    source = Source(
        "payments.authorized.v1",
        kind="payment",
        keys=(key_path,),
        fields={"amount_cents": "amount_cents"},
    )
    name = entity.name
    windows = {"7d": 7 * DAY, "30d": 30 * DAY}
    return View(
        name=f"{name}_spending",
        entities=(entity,),
        mode="batch",
        ttl=timedelta(days=3),
        description=f"What {whose} spends over a week and a month, materialised on a schedule.",
        sources=(source,),
        features=(
            *_windows(
                f"{name}_payments",
                "count",
                ("payment",),
                windows,
                describe=f"{{value}} payments by {whose} in the last {{window}}",
            ),
            *_windows(
                f"{name}_amount_mean",
                "avg",
                ("payment",),
                windows,
                field="amount_cents",
                dtype="float64",
                describe=f"{whose}'s mean payment over the last {{window}} is {{value}}",
            ),
            *_windows(
                f"{name}_amount_std",
                "std",
                ("payment",),
                windows,
                field="amount_cents",
                dtype="float64",
                describe=f"{whose}'s payments over the last {{window}} vary by {{value}}",
            ),
        ),
    )


CARD_SPENDING = _spending_view(CARD, "card_id", "this card")
RIDER_SPENDING = _spending_view(RIDER, "rider_id", "this rider")

RISK_WINDOWS = {"1d": DAY, "7d": 7 * DAY, "30d": 30 * DAY}


def _fraud_reason(reason_code: str | None) -> float | None:
    if reason_code is None:
        return None
    return int(chargeback_is_fraud(str(reason_code)))


FRAUD_REASON = Derived("fraud_reason", ("reason_code",), _fraud_reason)


def _risk_view(entity: Entity, key_path: str, scope: str, volume: Source) -> View:
    """The share of an entity's payments charged back as fraud, by the time the labels were
    known: chargebacks *filed* in the window over payments made in it. A chargeback counts from
    its arrival (its event time), never from the payment it disputes, so a value at t reads no
    label that arrived after t in either engine (the classic leak counts fraud discovered
    later). A window's newest payments have no label yet, and an entity's share rises as its
    frauds come to light: what the scorer knows at that instant, which is what it is trained
    on."""
    name = entity.name
    chargebacks = Source(
        "labels.chargeback_filed.v1",
        kind="chargeback",
        keys=(key_path,),
        fields={"fraud": FRAUD_REASON},
        where={key_path: None},
    )
    counts = _windows(
        f"{name}_risk_payments",
        "count",
        ("payment",),
        RISK_WINDOWS,
        describe=f"{{value}} payments {scope} in the last {{window}}",
    )
    frauds = _windows(
        f"{name}_risk_chargebacks",
        "sum",
        ("chargeback",),
        RISK_WINDOWS,
        field="fraud",
        describe=f"{{value}} fraud chargebacks filed {scope} in the last {{window}}",
    )
    shares = tuple(
        Ratio(
            f"{name}_fraud_share_{label}",
            f"{name}_risk_chargebacks_{label}",
            f"{name}_risk_payments_{label}",
            describe=(
                f"{{value}} of the payments {scope} in the last {_spoken(window)} "
                "were charged back as fraud"
            ),
        )
        for label, window in RISK_WINDOWS.items()
    )
    return View(
        name=f"{name}_risk",
        entities=(entity,),
        mode="batch",
        ttl=timedelta(days=3),
        description=f"Fraud {scope} by the labels known then, materialised on a schedule.",
        sources=(volume, chargebacks),
        features=(*counts, *frauds, *shares),
    )


def _known_address(ip: str) -> bool:
    # A replayed file without addresses says 0.0.0.0: no address, not one shared by all.
    return ip not in ("0.0.0.0", "::")  # noqa: S104 (an address read, not a bind)


def _sharing_view(entity: Entity, key_path: str, what: str, **where: Any) -> View:
    """How many cards and riders paid from one device or address over a day and a week: a
    device or address shared by many is a fraud farm's (batch: published hourly)."""
    name = entity.name
    windows = {"1d": DAY, "7d": 7 * DAY}
    return View(
        name=f"{name}_sharing",
        entities=(entity,),
        mode="batch",
        ttl=timedelta(days=3),
        description=f"Cards and riders sharing {what}, materialised on a schedule.",
        sources=(
            Source(
                "payments.authorized.v1",
                kind="payment",
                keys=(key_path,),
                fields={"card_id": "card_id", "rider_id": "rider_id"},
                where=where,
            ),
        ),
        features=(
            *_windows(
                f"{name}_distinct_cards",
                "count_distinct",
                ("payment",),
                windows,
                field="card_id",
                describe=f"{{value}} different cards paid from {what} in the last {{window}}",
            ),
            *_windows(
                f"{name}_distinct_riders",
                "count_distinct",
                ("payment",),
                windows,
                field="rider_id",
                describe=f"{{value}} different riders paid from {what} in the last {{window}}",
            ),
        ),
    )


DEVICE_SHARING = _sharing_view(DEVICE, "context.device_id", "this device")
IP_SHARING = _sharing_view(IP, "context.ip", "this address", **{"context.ip": _known_address})

ZONE_RISK = _risk_view(
    ZONE,
    "pickup_zone",
    "in this pickup zone",
    Source("payments.authorized.v1", kind="payment", keys=("pickup_zone",)),
)
# A driver is known once the trip is: its completed trips are the payments it can be blamed for.
DRIVER_RISK = _risk_view(
    DRIVER,
    "driver_id",
    "on this driver's trips",
    Source("trips.completed.v1", kind="payment", keys=("driver_id",)),
)

# The views of the first feature service, fraud_scoring_v1, which never changes.
FIRST_VIEWS: tuple[View, ...] = (
    CARD_VELOCITY,
    RIDER_ACTIVITY,
    DRIVER_ACTIVITY,
    DRIVER_RIDER_PAIR,
    ZONE_FRAUD,
    DRIVER_FRAUD,
    PLATFORM_FRAUD,
    RIDER_PROFILE,
    CARD_PROFILE,
    DRIVER_PROFILE,
    ZONE_PROFILE,
)
VIEWS: tuple[View, ...] = (
    *FIRST_VIEWS,
    CARD_RECENCY,
    CARD_SPENDING,
    RIDER_SPENDING,
    ZONE_RISK,
    DRIVER_RISK,
    DEVICE_SHARING,
    IP_SHARING,
)
VIEWS_BY_NAME: Mapping[str, View] = MappingProxyType({v.name: v for v in VIEWS})
STREAM_VIEWS = tuple(v for v in VIEWS if v.mode == "stream")
BATCH_VIEWS = tuple(v for v in VIEWS if v.mode == "batch")


@dataclass(frozen=True)
class FeatureService:
    """A versioned set of views served together; a model is trained against exactly one."""

    name: str
    views: tuple[View, ...]
    on_demand: tuple[str, ...]
    # The decision point whose requests it serves: ``authorization`` (a payment event, no
    # driver yet) or ``capture`` (the fare at the trip's end, its driver known).
    checkpoint: str = "authorization"


# The scoring request: a payments.authorized.v1 event. Its entities and the view keys they fill.
# A service never changes once models are trained on it: the feature log stores vectors by its
# feature order, and a model reads exactly its service's inputs.
FRAUD_SCORING_V1 = FeatureService(
    name="fraud_scoring_v1",
    views=FIRST_VIEWS,
    on_demand=(
        "amount_to_rider_avg_fare",
        "fare_per_km_to_zone_median",
        "hour_of_day",
        "is_new_card",
        "minutes_since_signup",
    ),
)
# The standard fraud features on top: the payment's amount and its place in the card's and the
# rider's history over a day, a week and a month, fraud in the pickup zone by the labels known,
# cards and riders sharing the payment's device and address.
FRAUD_SCORING_V2 = FeatureService(
    name="fraud_scoring_v2",
    views=(
        *FRAUD_SCORING_V1.views,
        CARD_RECENCY,
        CARD_SPENDING,
        RIDER_SPENDING,
        ZONE_RISK,
        DEVICE_SHARING,
        IP_SHARING,
    ),
    on_demand=(
        *FRAUD_SCORING_V1.on_demand,
        "payment_amount_cents",
        "amount_to_card_mean_24h",
        "amount_zscore_card_7d",
        "amount_zscore_card_30d",
        "amount_zscore_rider_30d",
    ),
)
# The second checkpoint: the fare captured once the trip is done, its driver known. The request
# is the payment with its trip's ``driver_id``.
FRAUD_CAPTURE_V1 = FeatureService(
    name="fraud_capture_v1",
    views=(*FRAUD_SCORING_V2.views, DRIVER_RISK),
    on_demand=FRAUD_SCORING_V2.on_demand,
    checkpoint="capture",
)
FEATURE_SERVICES = {s.name: s for s in (FRAUD_SCORING_V1, FRAUD_SCORING_V2, FRAUD_CAPTURE_V1)}


def topics() -> tuple[str, ...]:
    """Every topic a stream view reads, sorted: what the stream processor subscribes to."""
    return tuple(sorted({s.topic for v in STREAM_VIEWS for s in v.sources}))


def feature(name: str) -> tuple[View, Feature]:
    """Return the view declaring feature ``name`` and its declaration."""
    for view in VIEWS:
        for f in view.features:
            if f.name == name:
                return view, f
    raise KeyError(f"no feature named {name!r}")


_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def validate() -> None:
    """Check the declarations are coherent; raise ``ValueError`` naming the first problem."""
    seen: set[str] = set()
    for view in VIEWS:
        kinds = {s.kind for s in view.sources}
        fields = set(view.source_fields()) | {OCCURRED_AT}
        for f in view.features:
            if not _NAME.match(f.name) or f.name in seen:
                raise ValueError(f"{view.name}: bad or duplicate feature name {f.name!r}")
            seen.add(f.name)
            if isinstance(f, Ratio):
                names = {a.name for a in view.aggregates}
                if f.numerator not in names or f.denominator not in names:
                    raise ValueError(f"{view.name}.{f.name}: ratio of unknown features")
                continue
            if not set(f.kinds) <= kinds:
                raise ValueError(f"{view.name}.{f.name}: kinds {f.kinds} not all produced")
            fieldless = ("count", "age_days", "since_previous")
            if f.agg not in fieldless and f.field not in fields:
                raise ValueError(f"{view.name}.{f.name}: field {f.field!r} not provided")
        for source in view.sources:
            if len(source.keys) != len(view.entities):
                raise ValueError(f"{view.name}: source {source.topic} keys do not match entities")


validate()
