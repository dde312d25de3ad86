"""The window state on Redis: a sorted set per (view, entity) scored by event time, each add and
its read-back one MULTI/EXEC of Lua scripts (``features.state.base`` says what is kept)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from features.definitions import OCCURRED_AT, STREAM_VIEWS, Aggregate, View
from features.state.base import (
    MARKS_KEPT,
    SEP,
    Added,
    Applied,
    EntityRef,
    EntityRows,
    Evaluated,
    Marks,
    ServeRead,
    WindowState,
    fields_parse,
    fields_text,
    key_text,
    rows_by_entity,
    rows_sorted,
)
from features.windows import (
    US_PER_DAY,
    Row,
    cast,
    completed,
    over,
    selections,
    served_latest,
    spread,
)

# What Redis raises while it is briefly away (restarting, failing over, loading its data from
# disk): a caller may wait and try again. Anything else is a fault of the caller or the data.
UNAVAILABLE: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError)

# Entities whose key names are kept before the names start again.
NAMES_KEPT = 100_000

_CLOCK_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
if now <= last then now = last + 1 end
redis.call('SET', KEYS[1], string.format('%d', now))
return now
"""

# One entity's add, prune and read. KEYS: rows, meta, then one "pruned latest" set per last
# kind. ARGV: version, cutoff ('' for none), the number of last kinds, the kinds, then
# (score, member) pairs. The pruned rows come newest first (equal scores: greatest member
# first), so the first of a kind is that kind's latest.
_ADD_SCRIPT = """
local rows, meta = KEYS[1], KEYS[2]
local version, cutoff, n = ARGV[1], ARGV[2], tonumber(ARGV[3])
for i = 4 + n, #ARGV, 2 do
  redis.call('ZADD', rows, ARGV[i], ARGV[i + 1])
end
if cutoff ~= '' then
  local pruned = redis.call('ZREVRANGEBYSCORE', rows, cutoff, '-inf', 'WITHSCORES')
  if #pruned > 0 then
    local top = tonumber(pruned[2])
    local floor = tonumber(redis.call('HGET', meta, 'floor') or '')
    if floor == nil or top > floor then
      redis.call('HSET', meta, 'floor', string.format('%d', top))
    end
    for j = 1, n do
      local kind = ARGV[3 + j]
      for p = 1, #pruned, 2 do
        local m = pruned[p]
        local a = string.find(m, '\\31', 1, true)
        local b = string.find(m, '\\31', a + 1, true)
        if string.sub(m, a + 1, b - 1) == kind then
          redis.call('ZADD', KEYS[2 + j], pruned[p + 1], m)
          redis.call('ZREMRANGEBYRANK', KEYS[2 + j], 0, -2)
          break
        end
      end
    end
    redis.call('ZREMRANGEBYSCORE', rows, '-inf', cutoff)
  end
end
redis.call('HSET', meta, 'version', version)
local out = {redis.call('ZRANGE', rows, 0, -1, 'WITHSCORES')}
for j = 1, n do
  out[#out + 1] = redis.call('ZRANGE', KEYS[2 + j], 0, -1, 'WITHSCORES')
end
out[#out + 1] = redis.call('HGET', meta, 'floor')
out[#out + 1] = version
return out
"""

# The probes of a server's read: views evaluated in the store at the requests' instants, as
# ``features.windows.value_at`` evaluates them in Python (tests/features/test_instants.py holds
# the two equal), so the reply carries a few values rather than every row of every entity.
# ARGV from ``a``: the name of the event-time field; the number of view plans, then per plan its
# selection count, per selection its kinds (joined by \x1f), window (µs, '' unbounded) and
# aggregate count, per aggregate its kind and field ('' none); the number of entities probed,
# then per entity its plan (1-based), key count, instant count and instants. An entity's rows
# are its window rows and its pruned latest rows, each (event id, kind) once, in (ts, event id,
# kind) order: the order of a sorted set's (score, member), the pruned rows (at most one a
# kind) placed among them. Numbers go back as text (Redis would truncate a Lua number to an
# integer): counts and times as integers, sums, means and medians with 17 digits (exact).
_EVALUATE = """
local find, sub, format, concat = string.find, string.sub, string.format, table.concat
local decode, null = cjson.decode, cjson.null
local occurred = ARGV[a]; a = a + 1
local plans = {}
local count = tonumber(ARGV[a]); a = a + 1
for v = 1, count do
  local selections = {}
  local size = tonumber(ARGV[a]); a = a + 1
  for s = 1, size do
    local kinds, aggregates = {}, {}
    for kind in string.gmatch(ARGV[a], '[^\\31]+') do kinds[kind] = true end
    local window, n = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
    a = a + 3
    for g = 1, n do
      aggregates[g] = {ARGV[a], ARGV[a + 1]}
      a = a + 2
    end
    selections[s] = {kinds, window, aggregates}
  end
  plans[v] = selections
end

-- The rows of the entity probed (n of them): event time, member, kind, where the fields start
-- (after the second separator), the decoded fields (false until asked for). Tables reused from
-- one entity to the next, as are the scratch ones.
local ts, members, kinds, cuts, decoded, n = {}, {}, {}, {}, {}, 0
local chosen, values, seen, generation = {}, {}, {}, 0

local function head(i) return sub(members[i], 1, cuts[i] - 1) end
local function id(i) return sub(members[i], 1, find(members[i], '\\31', 1, true) - 1) end
local function before(x, y)
  -- Byte order (Lua's own string comparison follows the server's locale).
  for i = 1, math.min(#x, #y) do
    local bx, by = string.byte(x, i), string.byte(y, i)
    if bx ~= by then return bx < by end
  end
  return #x < #y
end
local function earlier(i, j)
  if ts[i] ~= ts[j] then return ts[i] < ts[j] end
  return before(head(i), head(j))
end
local function swap(i, j)
  ts[i], ts[j] = ts[j], ts[i]
  members[i], members[j] = members[j], members[i]
  kinds[i], kinds[j] = kinds[j], kinds[i]
  cuts[i], cuts[j] = cuts[j], cuts[i]
  decoded[i], decoded[j] = decoded[j], decoded[i]
end
local function push(m, score)
  local x = find(m, '\\31', 1, true)
  local y = find(m, '\\31', x + 1, true)
  n = n + 1
  ts[n], members[n], kinds[n] = tonumber(score), m, sub(m, x + 1, y - 1)
  cuts[n], decoded[n] = y, false
end
local function value(i, name)
  if name == occurred then return ts[i] / 1000000 end
  local fields = decoded[i]
  if not fields then
    fields = decode(sub(members[i], cuts[i] + 1))
    decoded[i] = fields
  end
  local v = fields[name]
  if v == null then return nil end
  return v
end
-- The instant being evaluated: what ``since_previous`` is counted to.
local evaluating = 0
local function part(kind, name, c)
  if kind == 'count' then return c end
  if kind == 'last' then
    if c == 0 then return '' end
    -- The greatest (ts, event id); of its rows (one per kind), the first.
    local best, j = chosen[c], c - 1
    while j >= 1 and ts[chosen[j]] == ts[best] and id(chosen[j]) == id(best) do
      best = chosen[j]
      j = j - 1
    end
    return format('%d', ts[best]) .. '\\29' .. members[best]
  end
  if kind == 'age_days' then
    if c == 0 then return '' end
    return format('%d', ts[chosen[1]])
  end
  if kind == 'since_previous' then
    -- The latest chosen row strictly before the instant (chosen rows are in time order).
    for j = c, 1, -1 do
      if ts[chosen[j]] < evaluating then return format('%d', ts[chosen[j]]) end
    end
    return ''
  end
  local m = 0
  for j = 1, c do
    local v = value(chosen[j], name)
    if v ~= nil then
      m = m + 1
      values[m] = v
    end
  end
  if kind == 'count_distinct' then
    generation = generation + 1
    local d = 0
    for j = 1, m do
      local v = values[j]
      if seen[v] ~= generation then
        seen[v] = generation
        d = d + 1
      end
    end
    return d
  end
  if kind == 'median' then
    if m == 0 then return '' end
    local sorted = {}
    for j = 1, m do sorted[j] = values[j] end
    table.sort(sorted)
    local h = math.floor(m / 2)
    if m % 2 == 1 then return format('%.17g', sorted[h + 1]) end
    return format('%.17g', (sorted[h] + sorted[h + 1]) / 2)
  end
  local total = 0
  for j = 1, m do total = total + values[j] end
  if kind == 'sum' then return format('%.17g', total) end
  if kind == 'std' then
    -- Count, sum and sum of squares: windows.spread reduces them, as every engine does.
    local squares = 0
    for j = 1, m do squares = squares + values[j] * values[j] end
    return format('%d %.17g %.17g', m, total, squares)
  end
  if kind == 'avg' then
    if m == 0 then return '' end
    return format('%.17g', total / m)
  end
  error('unknown aggregation ' .. kind)
end

local probes = tonumber(ARGV[a]); a = a + 1
for p = 1, probes do
  local plan = plans[tonumber(ARGV[a])]
  local size, instants = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  a = a + 3
  n = 0
  local flat = redis.call('ZRANGE', KEYS[k], 0, -1, 'WITHSCORES')
  for i = 1, #flat, 2 do push(flat[i], flat[i + 1]) end
  -- Rows are pruned only where a floor is set: without one the pruned sets are empty.
  local floor = redis.call('HGET', KEYS[k + 1], 'floor')
  for j = 2, floor and size - 1 or 1 do
    flat = redis.call('ZRANGE', KEYS[k + j], 0, -1, 'WITHSCORES')
    for i = 1, #flat, 2 do
      -- A pruned row, unless a window row is the same (event id, kind), goes back in order.
      push(flat[i], flat[i + 1])
      local h, same = head(n), false
      for r = 1, n - 1 do
        if cuts[r] == cuts[n] and head(r) == h then same = true; break end
      end
      if same then
        n = n - 1
      else
        local pos = n
        while pos > 1 and earlier(pos, pos - 1) do
          swap(pos, pos - 1)
          pos = pos - 1
        end
      end
    end
  end
  local one = {floor or ''}
  for q = 1, instants do
    local at = tonumber(ARGV[a]); a = a + 1
    local latest = nil
    for i = n, 1, -1 do
      if ts[i] <= at then latest = ts[i]; break end
    end
    local answer = {latest and format('%d', latest) or ''}
    for s = 1, #plan do
      local kindset, window, aggregates = plan[s][1], plan[s][2], plan[s][3]
      local low = window and at - window
      local c = 0
      for i = 1, n do
        local t = ts[i]
        if t > at then break end
        if (low == nil or t > low) and kindset[kinds[i]] then
          c = c + 1
          chosen[c] = i
        end
      end
      evaluating = at
      for g = 1, #aggregates do
        answer[#answer + 1] = part(aggregates[g][1], aggregates[g][2], c)
      end
    end
    one[#one + 1] = concat(answer, '\\30')
  end
  out[#out + 1] = one
  k = k + size
end
"""

# A server's add and read, one script (atomic, one round trip, one reply to parse). KEYS: the
# rows set of each entity rows are added to; then per entity read: rows, meta, its "pruned
# latest" sets; then the marks set of each partition asked for; then per entity probed: rows,
# meta, its "pruned latest" sets. ARGV: the number of entities added to, then per entity its
# row count and (score, member) pairs; the number of entities read, then per entity its key
# count and the version the server has cached ('' for none, '-' for "never touched"); the
# number of partitions; then the probes (below _EVALUATE). Returns per entity read 0 when that
# is still the version, else {1, rows, pruned sets..., floor, version}; then per partition its
# greatest mark (an empty list: none); then per entity probed {floor or '', per instant
# {latest or '', each aggregate's part}}.
_SERVE_READ_SCRIPT = (
    """
local k, a = 1, 1
local added = tonumber(ARGV[a]); a = a + 1
for i = 1, added do
  local count = tonumber(ARGV[a]); a = a + 1
  for j = 1, count do
    redis.call('ZADD', KEYS[k], ARGV[a], ARGV[a + 1])
    a = a + 2
  end
  k = k + 1
end
local out = {}
local entities = tonumber(ARGV[a]); a = a + 1
for i = 1, entities do
  local size, known = tonumber(ARGV[a]), ARGV[a + 1]
  a = a + 2
  local version = redis.call('HGET', KEYS[k + 1], 'version')
  if known ~= '' and ((version == false and known == '-') or version == known) then
    out[#out + 1] = 0
  else
    local one = {1, redis.call('ZRANGE', KEYS[k], 0, -1, 'WITHSCORES')}
    for j = 2, size - 1 do
      one[#one + 1] = redis.call('ZRANGE', KEYS[k + j], 0, -1, 'WITHSCORES')
    end
    one[#one + 1] = redis.call('HGET', KEYS[k + 1], 'floor')
    one[#one + 1] = version
    out[#out + 1] = one
  end
  k = k + size
end
local partitions = tonumber(ARGV[a]); a = a + 1
for i = 1, partitions do
  out[#out + 1] = redis.call('ZRANGE', KEYS[k], -1, -1)
  k = k + 1
end
"""
    + _EVALUATE
    + """
return out
"""
)

# The positions (1-based) of the entities whose meta hash (KEYS[i]) has a version other than
# ARGV[i].
_CHANGED_SCRIPT = """
local out = {}
for i = 1, #KEYS do
  if redis.call('HGET', KEYS[i], 'version') ~= ARGV[i] then out[#out + 1] = i end
end
return out
"""


class RedisState(WindowState):
    """Window state in Redis, every key under ``prefix``; per (view, entity key ``<key>``, the
    key as a JSON list):

    - ``rows:<view>:<key>``: sorted set of the window rows, scored by ts, member
      ``<event_id>\\x1f<kind>\\x1f<fields JSON>`` (equal scores sort by member: by event id);
    - ``pruned:<view>:<kind>:<key>``: the latest pruned row of a last kind (one member);
    - ``meta:<view>:<key>``: hash of ``floor`` and ``version``;

    and ``clock``, ``marks:<group>:<topic>:<partition>`` (``<offset>:<max ts>`` scored by
    offset; "" for None). Entity keys never expire: an idle entity keeps its few rows.
    """

    # redis-py's client takes each call on a connection of its pool.
    concurrent = True

    def __init__(
        self,
        client: Any,
        *,
        prefix: str,
        views: Sequence[View] = STREAM_VIEWS,
        lateness_us: int,
    ):
        super().__init__(views=views, lateness_us=lateness_us)
        self.client = client
        self.prefix = prefix
        self._add = client.register_script(_ADD_SCRIPT)
        self._clock = client.register_script(_CLOCK_SCRIPT)
        self._changed = client.register_script(_CHANGED_SCRIPT)
        self._serve_read = client.register_script(_SERVE_READ_SCRIPT)
        self._names: dict[EntityRef, list[str]] = {}
        self._plans: dict[str, tuple[list[Any], tuple[Aggregate, ...]]] = {}

    @classmethod
    def from_url(
        cls, url: str, *, prefix: str, timeout_s: float | None = None, **kw: Any
    ) -> RedisState:
        """A state on the Redis at ``url``. ``timeout_s``: every call fails within it, never
        retried (a server on the hot path degrades a batch rather than stall); None: 30 s
        socket timeouts and redis-py's retries (a processor may wait: it loses nothing)."""
        import redis

        if timeout_s is None:
            return cls(redis.Redis.from_url(url, socket_timeout=30), prefix=prefix, **kw)
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        client = redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
        )
        return cls(client, prefix=prefix, **kw)

    def _keys(self, view: str, key: tuple[str, ...]) -> list[str]:
        # Kept: a server asks for the same entities' names batch after batch (a few µs each).
        names = self._names.get((view, key))
        if names is None:
            if len(self._names) >= NAMES_KEPT:
                self._names.clear()
            text, kinds = key_text(key), self.retention[view].last_kinds
            names = self._names[(view, key)] = [
                f"{self.prefix}rows:{view}:{text}",
                f"{self.prefix}meta:{view}:{text}",
                *(f"{self.prefix}pruned:{view}:{k}:{text}" for k in kinds),
            ]
        return names

    def _parse(self, ref: EntityRef, reply: Sequence[Any]) -> EntityRows:
        *sets, floor, version = reply
        rows = []
        for flat in sets:
            for i in range(0, len(flat), 2):
                rows.append(_row(ref, flat[i], int(float(flat[i + 1]))))
        return EntityRows(
            rows=rows_sorted(rows),
            floor=None if floor is None else int(floor),
            version=None if version is None else _text(version),
        )

    def add_and_read(
        self,
        *,
        rows: Sequence[Row],
        version: str,
        marks: Marks | None = None,
        low_watermark: int | None = None,
    ) -> Added:
        grouped = rows_by_entity(rows)
        pipe = self.client.pipeline(transaction=True)
        self._clock(keys=[f"{self.prefix}clock"], client=pipe)
        for (group, topic, partition), entries in (marks or {}).items():
            if entries:
                name = f"{self.prefix}marks:{group}:{topic}:{partition}"
                pipe.zadd(name, {f"{o}:{'' if ts is None else ts}": o for o, ts in entries.items()})
                pipe.zremrangebyrank(name, 0, -MARKS_KEPT - 1)
        for (view, key), entity_rows in grouped.items():
            kinds = self.retention[view].last_kinds
            cutoff = self.cutoff(view, entity_rows, low_watermark=low_watermark)
            args: list[Any] = [version, "" if cutoff is None else cutoff, len(kinds), *kinds]
            for r in entity_rows:
                args += [r.ts, SEP.join((r.event_id, r.kind, fields_text(r.fields)))]
            self._add(keys=self._keys(view, key), args=args, client=pipe)
        results = pipe.execute()
        # The entity replies are the last ones, in the order the entities were queued.
        replies = results[len(results) - len(grouped) :] if grouped else []
        entities = {
            ref: self._parse(ref, reply) for ref, reply in zip(grouped, replies, strict=True)
        }
        return Added(clock=int(results[0]), entities=entities)

    def serve_read(
        self,
        *,
        rows: Sequence[Row],
        entities: Iterable[EntityRef],
        known: Mapping[EntityRef, str | None],
        group: str,
        partitions: Iterable[tuple[str, int]],
        probes: Mapping[EntityRef, Iterable[int]] = MappingProxyType({}),
    ) -> ServeRead:
        # One script for the whole batch rather than a command per entity in a MULTI: the
        # client's cost is per command queued and reply parsed (docs/performance.md). Probed
        # entities are evaluated in the script: a few values come back instead of their rows,
        # which the client would parse into objects only to count them.
        refs = list(dict.fromkeys(entities))
        slots = list(dict.fromkeys(partitions))
        grouped = rows_by_entity(rows)
        keys: list[str] = []
        args: list[Any] = [len(grouped)]
        for (view, key), entity_rows in grouped.items():
            keys.append(self._keys(view, key)[0])
            args.append(len(entity_rows))
            for r in entity_rows:
                args += [r.ts, SEP.join((r.event_id, r.kind, fields_text(r.fields)))]
        args.append(len(refs))
        for ref in refs:
            entity_keys = self._keys(*ref)
            keys += entity_keys
            cached = "" if ref not in known else ("-" if known[ref] is None else known[ref])
            args += [len(entity_keys), cached]
        keys += [f"{self.prefix}marks:{group}:{topic}:{partition}" for topic, partition in slots]
        args.append(len(slots))
        asked = {ref: list(dict.fromkeys(instants)) for ref, instants in probes.items()}
        # Each view's plan once, numbered from 1 as the script numbers them.
        plans = {view: n for n, view in enumerate(dict.fromkeys(v for v, _ in asked), 1)}
        args += [OCCURRED_AT, len(plans)]
        for view in plans:
            args += self._plan(view)[0]
        args.append(len(asked))
        for ref, instants in asked.items():
            entity_keys = self._keys(*ref)
            keys += entity_keys
            args += [plans[ref[0]], len(entity_keys), len(instants), *instants]
        replies = self._serve_read(keys=keys, args=args)
        evaluated = {}
        for (ref, instants), reply in zip(
            asked.items(), replies[len(replies) - len(asked) :], strict=True
        ):
            floor = int(reply[0]) if reply[0] else None
            for at, parts in zip(instants, reply[1:], strict=True):
                evaluated[(ref, at)] = self._evaluated(ref, at, floor, parts)
        entities_read = {
            ref: self._parse(ref, reply[1:])
            for ref, reply in zip(refs, replies, strict=False)
            if reply != 0
        }
        applied = {}
        for slot, entries in zip(slots, replies[len(refs) : len(refs) + len(slots)], strict=True):
            if entries:
                offset, ts = entries[0].decode().split(":")
                applied[slot] = Applied(int(offset), int(ts) if ts else None)
        return ServeRead(entities=entities_read, applied=applied, evaluated=evaluated)

    def _plan(self, view: str) -> tuple[list[Any], tuple[Aggregate, ...]]:
        # A view's plan as the script reads it (``_EVALUATE``) and its aggregates in the order
        # the script answers them; kept, it never changes.
        plan = self._plans.get(view)
        if plan is None:
            chosen = selections(self.views[view])
            args: list[Any] = [len(chosen)]
            for kinds, window, features in chosen:
                args += [SEP.join(sorted(kinds)), "" if window is None else window, len(features)]
                for f in features:
                    args += [f.agg, f.field or ""]
            order = tuple(f for *_, features in chosen for f in features)
            plan = self._plans[view] = (args, order)
        return plan

    def _evaluated(self, ref: EntityRef, at: int, floor: int | None, text: bytes) -> Evaluated:
        # One instant's answer from the script (``_EVALUATE``): the latest event time, then
        # each aggregate's part in plan order, separated by \x1e.
        view = self.views[ref[0]]
        parts = text.split(b"\x1e")
        served, latest = served_latest(view, int(parts[0]) if parts[0] else None, at, floor=floor)
        if not served:
            return Evaluated(None, latest, floor)
        found = {
            f.name: self._aggregate(ref, f, part, at)
            for f, part in zip(self._plan(ref[0])[1], parts[1:], strict=True)
        }
        return Evaluated(completed(view, found), latest, floor)

    def _aggregate(self, ref: EntityRef, feature: Aggregate, part: bytes, at: int) -> Any:
        # One aggregate's part (``_EVALUATE``), as ``windows.over`` gives it.
        agg = feature.agg
        if agg in ("count", "count_distinct"):
            return int(part)
        if agg == "sum":
            return cast(float(part), feature.dtype)
        if not part:
            return None
        if agg == "last":
            ts, member = part.split(b"\x1d", 1)
            return over(feature, [_row(ref, member, int(ts))], at)
        if agg == "age_days":
            return (at - int(part)) / US_PER_DAY
        if agg == "since_previous":
            return (at - int(part)) / 1_000_000
        if agg == "std":
            n, total, squares = part.split()
            return spread(int(n), float(total), float(squares))
        return float(part)

    def read(self, *, entities: Iterable[EntityRef]) -> dict[EntityRef, EntityRows]:
        refs = list(dict.fromkeys(entities))
        if not refs:
            return {}
        pipe = self.client.pipeline(transaction=True)
        sizes = []
        for view, key in refs:
            rows_key, meta_key, *pruned_keys = self._keys(view, key)
            for name in (rows_key, *pruned_keys):
                pipe.zrange(name, 0, -1, withscores=True, score_cast_func=bytes)
            pipe.hmget(meta_key, ["floor", "version"])
            sizes.append(2 + len(pruned_keys))
        results = pipe.execute()
        out: dict[EntityRef, EntityRows] = {}
        position = 0
        for ref, size in zip(refs, sizes, strict=True):
            chunk = results[position : position + size]
            position += size
            sets = [[item for pair in flat for item in pair] for flat in chunk[:-1]]
            out[ref] = self._parse(ref, [*sets, *chunk[-1]])
        return out

    def versions(self, *, entities: Iterable[EntityRef]) -> dict[EntityRef, str | None]:
        refs = list(dict.fromkeys(entities))
        pipe = self.client.pipeline(transaction=False)
        for view, key in refs:
            pipe.hget(self._keys(view, key)[1], "version")
        return {
            ref: None if v is None else _text(v)
            for ref, v in zip(refs, pipe.execute(), strict=True)
        }

    def changed(self, *, expected: Mapping[EntityRef, str]) -> list[EntityRef]:
        refs = list(expected)
        if not refs:
            return []
        positions = self._changed(
            keys=[self._keys(view, key)[1] for view, key in refs],
            args=[expected[ref] for ref in refs],
        )
        return [refs[int(i) - 1] for i in positions]

    def marks(self, *, group: str, topic: str, partition: int) -> dict[int, int | None]:
        entries = self.client.zrange(f"{self.prefix}marks:{group}:{topic}:{partition}", 0, -1)
        pairs = (entry.decode().split(":") for entry in entries)
        return {int(o): int(ts) if ts else None for o, ts in pairs}

    def close(self) -> None:
        self.client.close()


def _row(ref: EntityRef, member: bytes, ts: int) -> Row:
    # A sorted-set member (``<event_id>\x1f<kind>\x1f<fields JSON>``) of entity ``ref``.
    event_id, kind, fields = member.decode().split(SEP, 2)
    return Row(ref[0], ref[1], event_id, ts, kind, fields_parse(fields))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


# SQLite
