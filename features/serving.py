"""Online feature vectors for scoring: one Feast read for a micro-batch of requests.

A request is a ``payments.authorized.v1`` payload; its entities fill the keys of every view of
the feature service (``pickup_zone`` is the zone, ``driver_id`` when the payload has one, the
platform key always). An entity the online store has never seen comes back ``NOT_FOUND`` with
``None`` values and no event time, on SQLite and Redis alike: a normal answer, not an error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from feast.infra.online_stores.redis import RedisOnlineStore
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import feast_value_type_to_python_type
from google.protobuf.timestamp_pb2 import Timestamp

from events.bus import EndsRequest
from features.definitions import (
    FEATURE_SERVICES,
    FRAUD_SCORING_V1,
    PLATFORM_KEY,
    VIEWS,
    FeatureService,
)
from features.ondemand import on_demand, request_seconds
from features.publication import (
    Publication,
    batch_exact,
    publication_from_fields,
    publication_key,
    publication_read,
)
from features.store import (
    FeatureConfig,
    entity_key,
    feature_store,
    redis_entity_key,
    redis_hash_fields,
)
from features.stream_serving import (
    NOT_FOUND,
    OUTSIDE_TTL,
    PRESENT,
    STALE,
    Served,
    StreamServed,
    StreamServing,
    instant_us,
)
from features.training import MISSING_KEY, service_features, service_join_keys
from features.windows import moment, path_value, to_us

# Request field -> join key; the platform key is a constant.
REQUEST_KEYS: Mapping[str, str] = {
    "card_id": "card_id",
    "rider_id": "rider_id",
    "driver_id": "driver_id",
    "zone_id": "pickup_zone",
    "device_id": "context.device_id",
    "ip_address": "context.ip",
}


# Feast's status of a row held online but older than its view's ttl at the request's instant.


@dataclass(frozen=True)
class ServedVector:
    """One request's features as served: stored values with Feast's status and event time for
    each, and the on-demand features computed from the request and those values."""

    values: dict[str, Any]
    statuses: dict[str, str]
    event_timestamps: dict[str, datetime | None]
    on_demand: dict[str, Any]
    # ``exact``: the values are those the training join gives for the request (stream views
    # evaluated at its instant with every event before it applied, batch views from the
    # snapshot the join picks); ``stale``: not known to be, ``lag_ms`` behind; None: not checked
    # (a read of the stream views' rows as the online store holds them).
    consistency: str | None = None
    lag_ms: float | None = None

    @property
    def features(self) -> dict[str, Any]:
        """Every feature, stored then on-demand: the model's input."""
        return {**self.values, **self.on_demand}


def entity_row(request: Mapping[str, Any], join_keys: Sequence[str]) -> dict[str, str]:
    """Return the Feast entity row of ``request`` (a payment payload) for ``join_keys``."""
    row = {}
    for key in join_keys:
        if key == "platform_id":
            row[key] = PLATFORM_KEY
            continue
        value = path_value(request, REQUEST_KEYS.get(key, key))
        row[key] = MISSING_KEY if value is None else str(value)
    return row


def online_vector(
    config: FeatureConfig,
    requests: Sequence[Mapping[str, Any]],
    service: str = FRAUD_SCORING_V1.name,
    *,
    stream: StreamServing | None = None,
    served: Sequence[Served] = (),
    ends: EndsRequest | None = None,
) -> list[ServedVector]:
    """Return the served vector of each of ``requests`` (payment payloads), in order: one
    ``online_read`` of the Feast online store per view of ``service``, for the view's distinct
    entities (a batch of payments shares one platform row and a few zones). Read only.

    A row older than its view's ttl at the request's ``occurred_at`` is not served (status
    ``OUTSIDE_TTL``), as the point-in-time join of training sets drops it. Otherwise the same
    answer as ``FeatureStore.get_online_features`` for the service (a test holds them equal on
    both stores), at a third of its cost: that call builds a response proto, column
    by column, which this code then had to take apart again. The online store's own
    ``online_read`` is the interface the stream processor writes through
    (``online_write_batch``); on Redis one script, an HMGET per view and entity run inside
    Redis (``_online_read``).

    With ``stream``, the stream views come from the window state instead, evaluated at each
    request's instant with ``served`` (the batch's payment events) applied first
    (``features.stream_serving``; ``ends``: the batch's ``StreamServing.prefetch``), and each
    vector is marked ``exact`` or ``stale``: stale when the stream views are, or a batch
    view's row is not the snapshot the training join picks (``features.publication.batch_exact``).
    """
    if not requests:
        return []
    declared = FEATURE_SERVICES[service]
    online_store, repo, tables = _online(config)
    names = [name for name, _ in service_features(declared)]
    values = [dict.fromkeys(names) for _ in requests]
    statuses = [dict.fromkeys(names, NOT_FOUND) for _ in requests]
    stamps: list[dict[str, datetime | None]] = [dict.fromkeys(names) for _ in requests]
    keys = service_join_keys(declared)
    rows = [entity_row(r, keys) for r in requests]
    reads = []
    from_state = {v.name for v in declared.views if v.mode == "stream"} if stream else set()
    streamed = None
    if stream is not None:
        # Started first: the state's round trip overlaps the batch views' read below.
        streamed = _stream_begin(declared, stream, requests, rows, served, ends, from_state)
    for view in declared.views:
        if view.name in from_state:
            continue
        join_keys = list(view.join_keys)
        # Distinct entity -> the requests that name it, in first-seen order.
        # A request lacking a key of the view (a payment names no driver yet) is NOT_FOUND
        # without a read: no row is ever stored under an empty key (``features.windows``).
        readers: dict[tuple[str, ...], list[int]] = {}
        for i, row in enumerate(rows):
            key = tuple(row[k] for k in join_keys)
            if MISSING_KEY not in key:
                readers.setdefault(key, []).append(i)
        if readers:
            reads.append((view, readers))
    # The publication mark vouches for the batch views' rows only if read before them
    # (``features.publication``): on Redis in the same script, atomically, else first.
    marked = stream is not None and any(v.name not in from_state for v in declared.views)
    in_script = marked and isinstance(online_store, RedisOnlineStore)
    publication = publication_read(config) if marked and not in_script else None
    answers, mark = _online_read(
        online_store,
        repo,
        [(tables[view.name], list(readers), view) for view, readers in reads],
        mark_key=publication_key(config) if in_script else None,
    )
    if mark is not None:
        publication = publication_from_fields(*mark)
    instants = [request_seconds(r) for r in requests]
    for (view, readers), read in zip(reads, answers, strict=True):
        features = [f.name for f in view.features]
        ttl_s = view.ttl.total_seconds() if view.ttl else None
        for targets, (stamp, found) in zip(readers.values(), read, strict=True):
            if found is None:
                continue
            expires = stamp.timestamp() + ttl_s if ttl_s is not None else None
            for i in targets:
                at = instants[i]
                if expires is not None and at is not None and at > expires:
                    # Older than the view's ttl at the request's instant: the offline join
                    # drops it (Feast's online stores keep it), so it is not served either.
                    for name in features:
                        statuses[i][name] = OUTSIDE_TTL
                    continue
                for name in features:
                    values[i][name] = found.get(name)
                    statuses[i][name] = PRESENT
                    stamps[i][name] = stamp
    if streamed is None:
        return [
            ServedVector(
                values[i], statuses[i], stamps[i], on_demand(request, values[i], declared.on_demand)
            )
            for i, request in enumerate(requests)
        ]
    return _with_stream(
        declared, streamed, publication, requests, values, statuses, stamps, from_state
    )


@dataclass(frozen=True)
class _Streamed:
    """A batch's stream views being served: the views (name, join keys, feature names), each
    request's instant (µs), and the call that waits for the answers (``StreamServing.begin``)."""

    views: list[tuple[str, tuple[str, ...], tuple[str, ...]]]
    instants: list[int]
    answers: Callable[[], StreamServed]


def _stream_begin(
    declared: FeatureService,
    stream: StreamServing,
    requests: Sequence[Mapping[str, Any]],
    rows: Sequence[Mapping[str, str]],
    served: Sequence[Served],
    ends: EndsRequest | None,
    from_state: set[str],
) -> _Streamed:
    views = [
        (v.name, v.join_keys, tuple(f.name for f in v.features))
        for v in declared.views
        if v.name in from_state
    ]
    keys = []
    for row in rows:
        request_keys = {}
        for name, join_keys, _ in views:
            key = tuple([row[k] for k in join_keys])
            request_keys[name] = None if MISSING_KEY in key else key
        keys.append(request_keys)
    instants = [instant_us(r["occurred_at"]) for r in requests]
    return _Streamed(views, instants, stream.begin(keys, instants, served, ends))


def _with_stream(
    declared: FeatureService,
    streamed: _Streamed,
    publication: Publication | None,
    requests: Sequence[Mapping[str, Any]],
    values: list[dict[str, Any]],
    statuses: list[dict[str, str]],
    stamps: list[dict[str, datetime | None]],
    from_state: set[str],
) -> list[ServedVector]:
    """Fill in the stream views (``_stream_begin``) and mark each vector (``online_vector``):
    ``publication`` is the mark read before the batch views (None: the service has none)."""
    views, instants = streamed.views, streamed.instants
    answered = streamed.answers()
    batch = [v for v in declared.views if v.name not in from_state]
    assert publication is not None or not batch
    # A view's features share their status: one map per (view, status), copied in at once.
    marks = {(name, status): dict.fromkeys(names, status) for name, _, names in views
             for status in (PRESENT, NOT_FOUND, OUTSIDE_TTL)}  # fmt: skip
    vectors = []
    for i, request in enumerate(requests):
        answers = answered.answers[i]
        for name, _, names in views:
            answer = answers[name]
            statuses[i].update(marks[(name, answer.status)])
            if answer.values is not None:
                # Else values and times are None already (``online_vector``).
                values[i].update(answer.values)
                stamps[i].update(dict.fromkeys(names, moment(answer.latest_us)))
        consistency, lag = answered.consistency[i], answered.lag_ms[i]
        for view in batch:
            served_at = stamps[i][view.features[0].name]
            served_us = None if served_at is None else to_us(served_at)
            if not batch_exact(publication, served_us=served_us, at_us=instants[i]):
                consistency = STALE
                gap = abs(served_us - instants[i]) / 1000 if served_us is not None else 0.0
                lag = max(lag or 0.0, gap)
        vectors.append(
            ServedVector(
                values[i],
                statuses[i],
                stamps[i],
                on_demand(request, values[i], declared.on_demand),
                consistency=consistency,
                lag_ms=lag,
            )
        )
    return vectors


@lru_cache(maxsize=8)
def _online(config: FeatureConfig) -> tuple[Any, Any, dict[str, Any]]:
    """Return the online store of ``config``'s Feast store (the instance whose Redis client
    ``fraud.feature_reads`` bounds), its configuration, and the registry's feature views by
    name (read once: reading one back from the SQL registry costs milliseconds)."""
    store = feature_store(config)
    tables = {view.name: store.get_feature_view(view.name) for view in VIEWS}
    return store.provider.online_store, store.config, tables


def _online_read(
    online_store: Any,
    repo: Any,
    reads: Sequence[tuple[Any, list, Any]],
    *,
    mark_key: str | None = None,
) -> tuple[list[list[tuple[datetime | None, dict[str, Any] | None]]], list | None]:
    """Return, for each of ``reads`` (a registry feature view, entity key values in the view's
    join key order, the declared view whose features to read), in order, each entity's event
    time and feature values (Python scalars) as the online store holds them, or
    ``(None, None)`` when it holds no row; and, with ``mark_key`` (Redis only), the
    ``pending`` and ``done`` fields of that hash (the publication mark), read first in the
    same script.

    On Redis, one round trip for them all: one script that runs, in Redis, an HMGET per view
    and entity of the fields Feast's own ``online_read`` asks for (a field per view and
    feature, named by an mmh3 of the two, and the view's event time), rather than a pipeline of
    HMGETs, which costs the client the packing and parsing of each command (docs/performance.md).
    Each value is a serialized ``ValueProto`` and the event time a
    ``Timestamp``, decoded straight into the Python value and the datetime Feast's Redis store
    makes of them (without its dict of protos per entity and view, a third of a read's
    time); a test holds the vectors equal to ``get_online_features``. Other stores answer
    view by view through ``online_read`` (SQLite is a file: no round trips to save)."""
    from feast.infra.online_stores.redis import _versioned_fv_name

    if not isinstance(online_store, RedisOnlineStore):
        if mark_key is not None:
            raise ValueError("a mark is read in the script of the Redis store only")
        answers = []
        for table, keys, view in reads:
            features = [f.name for f in view.features]
            # Feast's stores append to the feature list they are given: a copy each time.
            rows = online_store.online_read(
                repo, table, [entity_key(view.join_keys, key) for key in keys], list(features)
            )
            answers.append(
                [
                    # Not held: SQLite answers (None, None).
                    (None, None)
                    if data is None or stamp is None or stamp == _EPOCH
                    else (stamp, {n: _python(data[n]) for n in features if n in data})
                    for stamp, data in rows
                ]
            )
        return answers, None
    # One script call: per view its fields once, then its entities' keys; each entity's HMGET
    # runs in Redis and the reply is one array (hiredis parses it in C).
    keys: list[bytes | str] = [] if mark_key is None else [mark_key]
    args: list[Any] = [0 if mark_key is None else 1, len(reads)]
    plans = []
    version = repo.entity_key_serialization_version
    for table, entities, view in reads:
        features = tuple(f.name for f in view.features)
        fields, stamp_field = redis_hash_fields(_versioned_fv_name(table, repo), features)
        join_keys = tuple(view.join_keys)
        keys += [redis_entity_key(join_keys, key, repo.project, version) for key in entities]
        args += [len(fields) + 1, *fields, stamp_field, len(entities)]
        plans.append((features, len(entities)))
    client = online_store._get_client(repo.online_store)
    replies = _hash_fields_script(client)(keys=keys, args=args, client=client)
    mark = None
    if mark_key is not None:
        mark, replies = replies[0], replies[1:]
    answers, position = [], 0
    for features, count in plans:
        answers.append(
            [_decoded(features, reply, 0) for reply in replies[position : position + count]]
        )
        position += count
    return answers, mark


# The HMGETs of ``_online_read``. ARGV: 1 when KEYS[1] is the publication mark to read first
# (else 0), the number of views, then per view its field count, its fields and its entity
# count; KEYS: (the mark,) the entities' hashes, view after view. Returns (the mark's pending
# and done fields,) one HMGET reply per entity, in order.
_HASH_FIELDS_SCRIPT = """
local out, k, a = {}, 1, 3
if ARGV[1] == '1' then
  out[1] = redis.call('HMGET', KEYS[1], 'pending', 'done')
  k = 2
end
for v = 1, tonumber(ARGV[2]) do
  local count = tonumber(ARGV[a])
  local fields = {}
  for f = 1, count do fields[f] = ARGV[a + f] end
  a = a + count + 1
  for e = 1, tonumber(ARGV[a]) do
    out[#out + 1] = redis.call('HMGET', KEYS[k], unpack(fields))
    k = k + 1
  end
  a = a + 1
end
return out
"""
_SCRIPTS: dict[int, Any] = {}


def _hash_fields_script(client: Any) -> Any:
    # Per client: ``fraud.feature_reads`` may give the store another one (its time budget).
    script = _SCRIPTS.get(id(client))
    if script is None or script.registered_client is not client:
        script = _SCRIPTS[id(client)] = client.register_script(_HASH_FIELDS_SCRIPT)
    return script


def _decoded(
    features: tuple[str, ...], reply: Sequence[bytes | None], begin: int
) -> tuple[datetime | None, dict[str, Any] | None]:
    """Return the event time and values of ``features`` from the part of an HMGET ``reply`` at
    ``begin`` (a value per feature, then the event time), or ``(None, None)`` for no row:
    Feast's Redis store answers the epoch with empty values then, and every row written has
    an event time."""
    end = begin + len(features)
    raw_stamp = reply[end]
    if not raw_stamp:
        return None, None
    moment = Timestamp.FromString(raw_stamp)
    # As Feast's Redis store converts it (float seconds), so the times are equal to the µs.
    stamp = datetime.fromtimestamp(moment.seconds + moment.nanos / 1_000_000_000.0, tz=UTC)
    if stamp == _EPOCH:
        return None, None
    values = {
        name: None if not raw else _value(raw)
        for name, raw in zip(features, reply[begin:end], strict=True)
    }
    return stamp, values


# Serialized ValueProto -> its Python scalar. Window counts, zone and platform rows and busy
# entities come back in the same bytes batch after batch, and a dict lookup is an order of
# magnitude cheaper than the proto's decoding (docs/performance.md). Bounded: cleared when full.
_DECODED: dict[bytes, Any] = {}
_DECODED_MAX = 65_536


def _value(raw: bytes) -> Any:
    try:
        return _DECODED[raw]
    except KeyError:
        pass
    value = _python(ValueProto.FromString(raw))
    if isinstance(value, (bool, int, float, str)):  # immutable: safe to hand out again
        if len(_DECODED) >= _DECODED_MAX:
            _DECODED.clear()
        _DECODED[raw] = value
    return value


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SCALARS = {"int64_val", "double_val", "int32_val", "float_val", "string_val", "bool_val"}


def _python(value: Any) -> Any:
    kind = value.WhichOneof("val")
    if kind is None:
        return None
    if kind in _SCALARS:
        return getattr(value, kind)
    return feast_value_type_to_python_type(value)
