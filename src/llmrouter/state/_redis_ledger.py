"""`RedisSpendLedger`: the spend ledger on Redis, shared by processes on many machines.

Each step that must be atomic is one Lua script (Redis runs a script alone):
``reserve`` sums the windows and adds the reservation only if it fits every
limit; ``settle`` and ``release`` close a reservation exactly once (a second
settle of the same id changes nothing). Keys of one scope share a hash tag
(``llmrouter:spend:{scope}:...``):

* ``open`` -- a hash of reservations in flight (id -> JSON ``at, usd, user, w``);
* ``settled:<window>`` and ``settled:<window>:u:<user>`` -- settled USD per UTC
  calendar hour, day and month (``INCRBYFLOAT``; they expire a week after their window);
* ``log`` -- a stream with one entry per settled or released reservation, for
  reports (`rows`) and counts;
* ``seq`` -- the reservation ids.

Settled spend is summed per calendar window, so budgets must use calendar
windows (hour, day, month: every `Budget` does).

When Redis does not answer (every call has a timeout): a budget *fails closed*
by default -- the call is refused with `StateUnavailableError` -- or, with
``fail="open"``, goes ahead unchecked. Settlements that cannot be written wait
in the process and are written when Redis answers again, so no spend entry is
lost while the process lives; the reservation meanwhile counts at its estimate.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from llmrouter.errors import ConfigurationError
from llmrouter.state._ledger_api import (
    PERIODS,
    BaseLedger,
    SpendTotals,
    WindowCheck,
    calendar_window,
)
from llmrouter.state._outage import Outages
from llmrouter.state._pending import PendingWrites
from llmrouter.state._redis_client import is_unavailable

if TYPE_CHECKING:
    import redis

__all__ = ["RedisSpendLedger"]

T = TypeVar("T")
Arg = str | int | float

_LOG_MAX = 1_000_000
"""Entries kept in a scope's log stream (approximately; older ones are trimmed)."""

_KEEP_S = 7 * 86400
"""Settled counters outlive their window by this much (reports of the last week)."""

_ABANDONED_S = 40 * 86400
"""A reservation this old is closed at its estimate (its process died long ago)."""

_TOTALS = """
local function totals(open_key, prefix, user, stale, checks)
  local out = {}
  for i, c in ipairs(checks) do
    local key = prefix .. ':settled:' .. c[4]
    if c[3] == 1 then key = key .. ':u:' .. user end
    out[i] = {tonumber(redis.call('GET', key) or '0'), 0, 0}
  end
  local entries = redis.call('HGETALL', open_key)
  for j = 1, #entries, 2 do
    local e = cjson.decode(entries[j + 1])
    for i, c in ipairs(checks) do
      if e.at >= c[1] and e.at < c[2] and (c[3] == 0 or e.user == user) then
        if e.at < stale then
          out[i][1] = out[i][1] + e.usd
        else
          out[i][2] = out[i][2] + e.usd
          out[i][3] = out[i][3] + 1
        end
      end
    end
  end
  return out
end
"""

_ADD_SETTLED = """
local function add_settled(prefix, user, usd, windows)
  if usd <= 0 then return end
  for _, w in ipairs(windows) do
    for _, key in ipairs({prefix .. ':settled:' .. w[1],
                          prefix .. ':settled:' .. w[1] .. ':u:' .. user}) do
      redis.call('INCRBYFLOAT', key, usd)
      redis.call('EXPIREAT', key, math.floor(w[2]) + tonumber(ARGV[#ARGV]))
    end
  end
end
"""

# KEYS: open, seq, log. ARGV: prefix, user, stale, checks, usd, at, windows, abandoned, keep
_RESERVE = (
    _TOTALS
    + _ADD_SETTLED
    + """
local prefix, user, stale = ARGV[1], ARGV[2], tonumber(ARGV[3])
local checks, usd, at = cjson.decode(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local entries = redis.call('HGETALL', KEYS[1])
for j = 1, #entries, 2 do  -- close reservations abandoned long ago, at their estimate
  local e = cjson.decode(entries[j + 1])
  if e.at < tonumber(ARGV[8]) then
    redis.call('HDEL', KEYS[1], entries[j])
    add_settled(prefix, e.user, e.usd, e.w)
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', LOG_MAX, '*', 'id', entries[j], 'user', e.user,
               'at', e.at, 'usd', e.usd, 'state', 'settled', 'model', '')
  end
end
local t = totals(KEYS[1], prefix, user, stale, checks)
for i, c in ipairs(checks) do
  if t[i][1] + t[i][2] + usd > c[5] then return cjson.encode(t) end
end
local id = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], id,
           cjson.encode({at = at, usd = usd, user = user, w = cjson.decode(ARGV[7])}))
return id
"""
).replace("LOG_MAX", str(_LOG_MAX))

# KEYS: open. ARGV: prefix, user, stale, checks
_READ = (
    _TOTALS
    + """
return cjson.encode(totals(KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3]), cjson.decode(ARGV[4])))
"""
)

# KEYS: open, seq, log. ARGV: prefix, id ('' = none), usd, model, user, at, windows, resize, keep
_SETTLE = (
    _ADD_SETTLED
    + """
for _, r in ipairs(cjson.decode(ARGV[8])) do
  local raw = redis.call('HGET', KEYS[1], r[1])
  if raw then
    local e = cjson.decode(raw)
    e.usd = r[2]
    redis.call('HSET', KEYS[1], r[1], cjson.encode(e))
  end
end
local usd, id, user, at, windows = tonumber(ARGV[3]), ARGV[2], ARGV[5], tonumber(ARGV[6]), nil
if id ~= '' then
  local raw = redis.call('HGET', KEYS[1], id)
  if not raw then return 0 end  -- settled or released already: exactly once
  local e = cjson.decode(raw)
  redis.call('HDEL', KEYS[1], id)
  user, at, windows = e.user, e.at, e.w
else
  if usd <= 0 then return 0 end
  id = tostring(redis.call('INCR', KEYS[2]))
  windows = cjson.decode(ARGV[7])
end
add_settled(ARGV[1], user, usd, windows)
redis.call('XADD', KEYS[3], 'MAXLEN', '~', LOG_MAX, '*', 'id', id, 'user', user, 'at', at,
           'usd', usd, 'state', 'settled', 'model', ARGV[4])
return 1
"""
).replace("LOG_MAX", str(_LOG_MAX))

# KEYS: open, log. ARGV: id
_RELEASE = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local e = cjson.decode(raw)
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', LOG_MAX, '*', 'id', ARGV[1], 'user', e.user,
           'at', e.at, 'usd', 0, 'state', 'released', 'model', '')
return 1
""".replace("LOG_MAX", str(_LOG_MAX))


def _window_key(start: float, end: float) -> str:
    return f"{start:.0f}-{end:.0f}"


def _windows(at: float) -> list[list[Any]]:
    """The calendar windows holding ``at``: [key suffix, end time] each."""
    return [[_window_key(*w), w[1]] for w in (calendar_window(p, at) for p in PERIODS)]


def _finite(value: float) -> float:
    return max(min(value, 1e300), -1e300)  # JSON and Lua have no infinity


class RedisSpendLedger(BaseLedger):
    """Spend per (scope, user) in Redis: budgets shared by every process that uses it.

    Build it through a state (``state="redis://HOST:PORT/DB"`` on a router) or
    directly from a client. ``fail`` says what a budget does while Redis does not
    answer: ``"closed"`` refuses calls (`StateUnavailableError`), ``"open"`` lets them
    through unchecked (their spend is written once Redis answers again).

    Examples:
        >>> from llmrouter.state import RedisState
        >>> ledger = RedisState("redis://127.0.0.1:6379/0").ledger()  # doctest: +SKIP
        >>> ledger.spent("router", *Budget(usd=5, per="day").window())  # doctest: +SKIP
        0.0
    """

    remote = True

    def __init__(
        self,
        client: redis.Redis,
        *,
        namespace: str = "llmrouter",
        fail: Literal["closed", "open"] = "closed",
        where: str = "redis",
        outages: Outages | None = None,
    ) -> None:
        if fail not in ("closed", "open"):
            raise ConfigurationError(f"fail must be 'closed' or 'open', not {fail!r}")
        self.client = client
        self.namespace = namespace
        self.fail = fail
        self.where = where
        self._outages = outages or Outages("redis", where)
        self._reserve = client.register_script(_RESERVE)
        self._read = client.register_script(_READ)
        self._settle = client.register_script(_SETTLE)
        self._release = client.register_script(_RELEASE)
        self._pending = PendingWrites(
            lambda action, force: self._call("budgets", action, force=force), "spend entries"
        )
        self._local_ids = itertools.count(-1, -1)
        self._unchecked: dict[int, tuple[str, str | None, float]] = {}
        """Reservations made while Redis was down (fail="open"): id -> scope, user, at."""

    def __repr__(self) -> str:
        return f"RedisSpendLedger({self.where!r}, fail={self.fail!r})"

    # ------------------------------------------------------------------ keys

    def _prefix(self, scope: str) -> str:
        return f"{self.namespace}:spend:{{{scope}}}"

    def _keys(self, scope: str) -> list[str]:
        prefix = self._prefix(scope)
        return [f"{prefix}:open", f"{prefix}:seq", f"{prefix}:log"]

    @staticmethod
    def _checks(checks: Sequence[WindowCheck]) -> str:
        rows = []
        for c in checks:
            if not any(calendar_window(p, c.since) == (c.since, c.until) for p in PERIODS):
                raise ConfigurationError(
                    f"the Redis ledger keeps spend per UTC calendar hour, day and month; "
                    f"[{c.since}, {c.until}) is none of them"
                )
            rows.append(
                [
                    c.since,
                    c.until,
                    int(c.per_user),
                    _window_key(c.since, c.until),
                    _finite(c.limit_usd),
                ]
            )
        return json.dumps(rows)

    # ------------------------------------------------------------- the calls

    def _call(self, concern: str, action: Callable[[], T], *, force: bool = False) -> T:
        """Run one Redis action; `StateUnavailableError` if Redis does not answer."""
        meanwhile = (
            "budgets refuse calls"
            if self.fail == "closed"
            else "budgets let calls through unchecked"
        )
        return self._outages.call(concern, action, meanwhile, force=force)

    def totals_many(
        self,
        scope: str,
        user: str | None,
        checks: Sequence[WindowCheck],
        *,
        stale_before: float = -math.inf,
    ) -> list[SpendTotals]:
        if not checks:
            return []
        self._pending.flush()
        args: list[Arg] = [
            self._prefix(scope),
            user or "",
            _finite(stale_before),
            self._checks(checks),
        ]
        try:
            raw = self._call("budgets", lambda: self._read(keys=self._keys(scope)[:1], args=args))
        except Exception as exc:
            if self.fail == "open" and is_unavailable(exc):
                return [SpendTotals(0.0, 0.0, 0) for _ in checks]
            raise
        return [SpendTotals(float(s), float(r), int(n)) for s, r, n in json.loads(raw)]

    def reserve_within(
        self,
        scope: str,
        user: str | None,
        usd: float,
        *,
        at: float,
        checks: Sequence[WindowCheck],
        stale_before: float = -math.inf,
    ) -> int | list[SpendTotals]:
        self._pending.flush()
        at = round(at, 3)  # as stored (Lua's JSON keeps 14 digits): same windows both sides
        args: list[Arg] = [
            self._prefix(scope),
            user or "",
            _finite(stale_before),
            self._checks(checks),
            repr(float(usd)),
            repr(float(at)),
            json.dumps(_windows(at)),
            repr(time.time() - _ABANDONED_S),
            _KEEP_S,
        ]
        try:
            raw = self._call("budgets", lambda: self._reserve(keys=self._keys(scope), args=args))
        except Exception as exc:
            if self.fail == "open" and is_unavailable(exc):
                local = next(self._local_ids)
                self._unchecked[local] = (scope, user, at)
                return local
            raise
        if isinstance(raw, int):
            return raw
        return [SpendTotals(float(s), float(r), int(n)) for s, r, n in json.loads(raw)]

    def settle(
        self,
        reservation: int | None,
        usd: float,
        *,
        model: str | None = None,
        scope: str = "",
        user: str | None = None,
        at: float | None = None,
        resize: Sequence[tuple[int, float]] = (),
    ) -> None:
        if reservation is not None and reservation < 0:  # made while Redis was down
            scope, user, at = self._unchecked.pop(reservation, (scope, user, at))
            reservation = None
        at = round(time.time() if at is None else at, 3)
        args: list[Arg] = [
            self._prefix(scope),
            "" if reservation is None else str(reservation),
            repr(float(usd)),
            model or "",
            user or "",
            repr(float(at)),
            json.dumps(_windows(at)),
            json.dumps([[str(rid), amount] for rid, amount in resize if rid >= 0]),
            _KEEP_S,
        ]
        keys = self._keys(scope)
        self._write(lambda: self._settle(keys=keys, args=args))

    def release(self, reservation: int, *, scope: str = "") -> None:
        if reservation < 0:  # made while Redis was down: nothing was written
            self._unchecked.pop(reservation, None)
            return
        open_key, _, log = self._keys(scope)
        self._write(lambda: self._release(keys=[open_key, log], args=[str(reservation)]))

    def resize(self, reservations: Sequence[tuple[int, float]], *, scope: str = "") -> None:
        if any(rid >= 0 for rid, _ in reservations):
            self.settle(None, 0.0, scope=scope, resize=reservations)

    def rows(self, scope: str | None = None) -> list[dict[str, Any]]:
        scopes = [scope] if scope is not None else self._scopes()
        rows: list[dict[str, Any]] = []
        for name in scopes:
            open_key, _, log = self._keys(name)
            entries: Any = self._call("budgets", lambda: self.client.xrange(log))  # noqa: B023
            for _, fields in entries:
                rows.append(_row(name, {_text(k): _text(v) for k, v in fields.items()}))
            opened: Any = self._call("budgets", lambda: self.client.hgetall(open_key))  # noqa: B023
            for rid, raw in opened.items():
                e = json.loads(raw)
                rows.append(_row(name, {"id": _text(rid), "state": "reserved", "model": "", **e}))
        rows.sort(key=lambda r: (r["scope"], r["id"]))
        return rows

    def pending(self) -> int:
        """Settlements waiting for Redis to answer again (written by the next call)."""
        return len(self._pending)

    def flush(self) -> bool:
        """Write waiting settlements now (asking Redis even if it just failed);
        True if none is left."""
        return self._pending.flush(force=True)

    def close(self) -> None:
        self._pending.flush()

    # ------------------------------------------------------------- internals

    def _scopes(self) -> list[str]:
        pattern = f"{self.namespace}:spend:*:log"
        keys = self._call("budgets", lambda: list(self.client.scan_iter(match=pattern)))
        start = len(self.namespace) + len(":spend:{")
        return sorted(_text(k)[start : -len("}:log")] for k in keys)

    def _write(self, action: Callable[[], object]) -> None:
        """Write now, or keep it for later if Redis does not answer (never lost)."""
        self._pending.write(action)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _row(scope: str, fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": int(fields["id"]),
        "scope": scope,
        "user": fields.get("user", ""),
        "at": float(fields["at"]),
        "usd": float(fields["usd"]),
        "state": fields["state"],
        "model": fields.get("model") or None,
    }
