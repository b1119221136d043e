"""The key pool's state shared by every replica through Redis: leases, learned limits, benches.

fal's concurrency limit is per account, not per process (docs/fal-protocol.md §5), so with
REDIS_URL the slots of a key are counted across the cluster:

- `…:key:<id>:leases`, a sorted set of lease ids scored by their expiry (Redis' own clock).
  A lease lives LEASE_TTL and is renewed while its request runs, so a replica that dies frees
  its slots within LEASE_TTL.
- `…:key:<id>:state`, a hash with the learned limit (`auto`) and its epoch.
- `…:key:<id>:bench`, the reason a key is left out, expiring with the cooldown.

`<id>` is sha256(key)[:16]: replicas with the same FAL_KEY agree, and the key itself is never
stored. One round trip takes a lease (a Lua script that also picks the least-loaded key and
reads every key's bench and limit); one more releases it (with the additive increase, or the
decrease and bench after a 429). Any failure raises SharedDown and the pool serves on its own
state; a release that fails is dropped, and its lease expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

from ..store.redis import RedisStore, SharedDown

LEASE_TTL = 30.0  # seconds a lease lives without renewal
RENEW_EVERY = 5  # ticks (of shared.TICK_INTERVAL) between lease renewals
REPLICA_TTL = 5.0  # seconds a replica counts as alive after its last tick
STATE_TTL = 24 * 3600.0  # a learned limit unused for a day is learned again
MAX_BENCH = 3600.0  # the longest bench believed in Redis, unless the pool says otherwise

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# A key's view: in flight (cluster-wide), limit ('' none), epoch, bench ms left, bench reason.
# Whatever is in Redis is checked, as anyone with access to it may have written garbage: a
# limit that is no finite number >= 1 (`abc`, -1, 0, nan, inf) is none, one above the largest
# is the largest; an epoch that is no whole number >= 0 is 0; a lease or replica further ahead than
# twice its lifetime was written by no replica and is dropped; a bench longer than the longest
# the pool sets is cut to it.
_VIEW = """
local function clean_limit(raw, max_limit)
  local n = tonumber(raw)
  if n == nil or n ~= n or n < 1 or n == math.huge then return nil end
  if n > max_limit then return max_limit end
  return n
end
local function clean_epoch(raw)
  local n = tonumber(raw)
  if n == nil or n ~= n or n < 0 or n > 1e15 then return 0 end
  return math.floor(n)
end
local function view(i, out, lease_ms, max_limit, max_bench)
  local leases, state, bench = KEYS[3*i-2], KEYS[3*i-1], KEYS[3*i]
  redis.call('ZREMRANGEBYSCORE', leases, '-inf', now)
  redis.call('ZREMRANGEBYSCORE', leases, '(' .. string.format('%d', now + 2 * lease_ms), '+inf')
  local fields = redis.call('HMGET', state, 'limit', 'epoch')
  local bench_ms = redis.call('PTTL', bench)
  local reason = ''
  if bench_ms > 0 then
    if bench_ms > max_bench then
      redis.call('PEXPIRE', bench, max_bench)
      bench_ms = max_bench
    end
    reason = redis.call('GET', bench) or ''
  else
    bench_ms = 0
  end
  local limit = clean_limit(fields[1], max_limit)
  out[#out+1] = redis.call('ZCARD', leases)
  out[#out+1] = limit and tostring(limit) or ''
  out[#out+1] = clean_epoch(fields[2])
  out[#out+1] = bench_ms
  out[#out+1] = reason
end
"""

# KEYS: (leases, state, bench) per key. ARGV: lease id, lease ttl ms, fixed cap ('' auto),
# a '0'/'1' per key for keys to leave out, max limit, max bench ms. Returns the 0-based key
# taken (-1: none), then the view of every key (five fields each).
_ACQUIRE = (
    _NOW
    + _VIEW
    + """
local out = {}
local cap = tonumber(ARGV[3])
local lease_ms, max_limit, max_bench = tonumber(ARGV[2]), tonumber(ARGV[5]), tonumber(ARGV[6])
local best, best_count = -1, -1
for i = 1, #KEYS / 3 do
  view(i, out, lease_ms, max_limit, max_bench)
  local count, limit = out[#out-4], cap or tonumber(out[#out-3])
  if out[#out-1] == 0 and string.sub(ARGV[4], i, i) ~= '1'
      and (limit == nil or count < math.floor(limit))
      and (best < 0 or count < best_count) then
    best, best_count = i, count
  end
end
if best > 0 then
  redis.call('ZADD', KEYS[3*best-2], now + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', KEYS[3*best-2], ARGV[2])
  out[(best-1)*5+1] = best_count + 1
end
table.insert(out, 1, best - 1)
return out
"""
)

# KEYS: leases, state, bench of one key. ARGV: lease id ('' none), adaptive '1'/'0', the
# lease's epoch, rate limited '1'/'0', bench ms ('0' none), bench reason, max limit, decrease
# factor, state ttl ms. Returns the key's limit ('' none) and epoch.
_RELEASE = (
    _NOW
    + _VIEW
    + """
local leases, state, bench = KEYS[1], KEYS[2], KEYS[3]
local count = redis.call('ZCARD', leases)  -- in flight, this request included
if ARGV[1] ~= '' and redis.call('ZREM', leases, ARGV[1]) == 0 then count = count + 1 end
local fields = redis.call('HMGET', state, 'limit', 'epoch')
local limit, epoch = clean_limit(fields[1], tonumber(ARGV[7])), clean_epoch(fields[2])
if ARGV[2] == '1' then
  if ARGV[4] == '1' then
    -- one decrease per congestion event: a lease taken before the last one is part of it
    if tonumber(ARGV[3]) == epoch then
      local base = count
      if limit ~= nil and limit < base then base = limit end
      limit = math.max(1, math.floor(base * tonumber(ARGV[8])))
      epoch = epoch + 1
      redis.call('HSET', state, 'limit', tostring(limit), 'epoch', epoch)
      redis.call('PEXPIRE', state, ARGV[9])
    end
  elseif ARGV[1] ~= '' and limit ~= nil and count >= math.floor(limit) then
    limit = math.min(tonumber(ARGV[7]), limit + 1 / limit)
    redis.call('HSET', state, 'limit', tostring(limit))
    redis.call('PEXPIRE', state, ARGV[9])
  end
end
if tonumber(ARGV[5]) > 0 and redis.call('PTTL', bench) < tonumber(ARGV[5]) then
  redis.call('SET', bench, ARGV[6], 'PX', ARGV[5])
end
if limit == nil then return {'', epoch} end
return {tostring(limit), epoch}
"""
)

# KEYS: (leases, state, bench) per key, then the replicas set. ARGV: replica id, replica ttl
# ms, lease ttl ms, max limit, max bench ms, then per key the space-separated lease ids to
# renew. Returns the number of live replicas, then the view of every key.
_TICK = (
    _NOW
    + _VIEW
    + """
local replicas = KEYS[#KEYS]
local replica_ms, lease_ms = tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZADD', replicas, now + replica_ms, ARGV[1])
redis.call('ZREMRANGEBYSCORE', replicas, '-inf', now)
redis.call('ZREMRANGEBYSCORE', replicas, '(' .. string.format('%d', now + 2 * replica_ms), '+inf')
redis.call('PEXPIRE', replicas, ARGV[2])
local out = {redis.call('ZCARD', replicas)}
for i = 1, (#KEYS - 1) / 3 do
  local leases = KEYS[3*i-2]
  local renewed = false
  for id in string.gmatch(ARGV[5+i], '%S+') do
    redis.call('ZADD', leases, 'XX', now + lease_ms, id)
    renewed = true
  end
  if renewed then redis.call('PEXPIRE', leases, ARGV[3]) end
  view(i, out, lease_ms, tonumber(ARGV[4]), tonumber(ARGV[5]))
end
return out
"""
)

# KEYS: leases of every key, then the replicas set. ARGV: replica id, then lease ids.
_LEAVE = """
for i = 1, #KEYS - 1 do
  for j = 2, #ARGV do redis.call('ZREM', KEYS[i], ARGV[j]) end
end
redis.call('ZREM', KEYS[#KEYS], ARGV[1])
return 1
"""


def key_id(key: str) -> str:
    """How a fal key is named in Redis: never the key itself."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class KeyView:
    """One key as the cluster sees it."""

    in_flight: int
    limit: float | None
    epoch: int
    bench_seconds: float
    bench_reason: str


@dataclass(slots=True)
class _Release:
    index: int
    token: str
    epoch: int
    rate_limited: bool = False
    bench_seconds: float = 0.0
    bench_reason: str = ""


# Called with a key's limit (None: none yet) and epoch after a release or a 429 reached Redis.
LimitSink = Callable[[int, float | None, int], None]


class ClusterKeys:
    def __init__(
        self,
        store: RedisStore,
        keys: list[str],
        *,
        cap: int | None,
        decrease: float,
        max_limit: float,
        lease_ttl: float = LEASE_TTL,
        max_bench: float = MAX_BENCH,
    ) -> None:
        """`max_bench`: the longest bench the pool sets (a longer one in Redis is cut)."""
        self._store = store
        self._count = len(keys)
        self._redis_keys: list[list[str]] = []
        for key in keys:
            base = store.key(f"key:{key_id(key)}")
            self._redis_keys.append([f"{base}:leases", f"{base}:state", f"{base}:bench"])
        self._all_keys = [name for triple in self._redis_keys for name in triple]
        self._replicas_key = store.key("replicas")
        self._cap = "" if cap is None else str(cap)
        self._adaptive = "1" if cap is None else "0"
        self._decrease = str(decrease)
        self._max_limit = str(max_limit)
        self._lease_ms = str(int(lease_ttl * 1000))
        self._max_bench_ms = str(max(1, int(max_bench * 1000)))
        self._ids = (f"{store.replica_id}:{n}" for n in itertools.count())
        self._live: list[dict[str, None]] = [{} for _ in keys]  # lease ids held, per key
        self._pending: dict[int, _Release] = {}  # the release of each key not yet sent
        self._tasks: set[asyncio.Task[None]] = set()
        self._ticks = 0
        self._acquire = store.script(_ACQUIRE)
        self._release = store.script(_RELEASE)
        self._tick = store.script(_TICK)
        self._leave = store.script(_LEAVE)
        self.replicas = 1  # live replicas at the last tick: the share of a limit while down
        self.views: list[KeyView] | None = None  # the last view of every key, for the pool
        self._on_views: Callable[[list[KeyView]], None] | None = None
        self._on_limit: LimitSink | None = None
        store.on_tick(self.tick)
        store.on_close(self.leave)

    @property
    def up(self) -> bool:
        return self._store.up

    def attach(self, on_views: Callable[[list[KeyView]], None], on_limit: LimitSink) -> None:
        """The pool's callbacks for what Redis says (views at each tick, limits on release)."""
        self._on_views, self._on_limit = on_views, on_limit

    async def acquire(self, exclude: frozenset[int]) -> tuple[int | None, str, list[KeyView]]:
        """The least-loaded key (cluster-wide) under its limit and not benched, leased; or None.

        Raises SharedDown."""
        token = next(self._ids)
        leave_out = "".join("1" if i in exclude else "0" for i in range(self._count))
        args = [token, self._lease_ms, self._cap, leave_out, self._max_limit, self._max_bench_ms]
        reply = await self._store.run_script(self._acquire, self._all_keys, args)
        picked = int(reply[0])
        views = _views(reply, 1, self._count)
        if picked < 0:
            return None, token, views
        self._live[picked][token] = None
        return picked, token, views

    def release(self, index: int, token: str, epoch: int) -> None:
        """Send the release soon; a 429 or refusal noted in this same step joins it."""
        self._live[index].pop(token, None)
        self._spawn(_Release(index, token, epoch))

    def note_bench(self, index: int, seconds: float, reason: str, *, rate_limited: bool) -> None:
        """fal refused or rate-limited the lease of `index` just released: share it."""
        pending = self._pending.get(index)
        if pending is None:  # the release has already gone: send this on its own
            pending = _Release(index, "", -1)
            self._spawn(pending)
        pending.rate_limited = pending.rate_limited or rate_limited
        if seconds > pending.bench_seconds:
            pending.bench_seconds, pending.bench_reason = seconds, reason

    def _spawn(self, pending: _Release) -> None:
        self._pending[pending.index] = pending
        task = asyncio.get_running_loop().create_task(self._send(pending))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, pending: _Release) -> None:
        # Runs after the step that released the lease, so a note_bench() from it is included.
        index = pending.index
        if self._pending.get(index) is pending:
            del self._pending[index]
        args = [
            pending.token,
            self._adaptive,
            pending.epoch,
            "1" if pending.rate_limited and pending.epoch >= 0 else "0",
            int(pending.bench_seconds * 1000),
            pending.bench_reason,
            self._max_limit,
            self._decrease,
            int(STATE_TTL * 1000),
        ]
        try:
            reply = await self._store.run_script(self._release, self._redis_keys[index], args)
        except SharedDown:
            return  # the lease expires on its own
        if self._on_limit is not None:
            self._on_limit(index, _limit(reply[0]), _whole(reply[1]))

    async def tick(self) -> None:
        """Every second: say this replica is alive, renew its leases now and then, and read
        every key's state (benches set elsewhere, the shared limit) for the pool and metrics."""
        self._ticks += 1
        renew = self._ticks % RENEW_EVERY == 0
        tokens = [" ".join(live) if renew else "" for live in self._live]
        args = [
            self._store.replica_id,
            int(REPLICA_TTL * 1000),
            self._lease_ms,
            self._max_limit,
            self._max_bench_ms,
            *tokens,
        ]
        reply = await self._store.run_script(
            self._tick, [*self._all_keys, self._replicas_key], args
        )
        self.replicas = max(1, int(reply[0]))
        views = _views(reply, 1, self._count)
        if self._on_views is not None:
            self._on_views(views)

    async def leave(self) -> None:
        """At shutdown: free the slots still held and leave the replica count."""
        if self._tasks:  # releases on their way (the drain just ended the last requests)
            await asyncio.wait(set(self._tasks), timeout=1.0)
        tokens = [token for live in self._live for token in live]
        keys = [triple[0] for triple in self._redis_keys]
        with contextlib.suppress(SharedDown):
            await self._store.run_script(
                self._leave, [*keys, self._replicas_key], [self._store.replica_id, *tokens]
            )


def _limit(raw: object) -> float | None:
    """A limit as the scripts return it ('' none); anything but a number >= 1: none."""
    try:
        value = float(str(raw))
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 1 else None


def _whole(raw: object) -> int:
    try:
        return max(0, int(str(raw)))
    except ValueError:
        return 0


def _views(reply: list[object], start: int, count: int) -> list[KeyView]:
    views = []
    for i in range(count):
        n, limit, epoch, bench_ms, reason = reply[start + 5 * i : start + 5 * i + 5]
        views.append(
            KeyView(_whole(n), _limit(limit), _whole(epoch), _whole(bench_ms) / 1000, str(reason))
        )
    return views
