"""The Lua scripts: each runs atomically inside Redis, so no check is ever separated from
the write it guards (no read-then-write from Python).

Time is Redis's own clock (``TIME``), in milliseconds, so routers on hosts whose clocks
disagree still share one window; tests pass an explicit time instead (``now`` argument).
"""

from __future__ import annotations

#: Shared helpers, prepended to each script.
_COMMON = """
local function now_ms(arg)
  if arg ~= nil and arg ~= '' then return tonumber(arg) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function int(value)
  return string.format('%d', value)
end
-- Sliding-window requests/tokens per minute, with LimitState's semantics: a request
-- counts for 60 s from its admission; tokens are refused when the window already holds
-- some and the estimate would take it over the limit.
local function window_admit(rkey, tkey, skey, rpm, tpm, estimate, member, now)
  local horizon = now - 60000
  if rpm ~= '' then
    redis.call('ZREMRANGEBYSCORE', rkey, '-inf', horizon)
    if redis.call('ZCARD', rkey) >= tonumber(rpm) then
      local oldest = redis.call('ZRANGE', rkey, 0, 0, 'WITHSCORES')
      return {'rpm', tostring((tonumber(oldest[2]) + 60000 - now) / 1000)}
    end
  end
  if tpm ~= '' then
    local old = redis.call('ZRANGEBYSCORE', tkey, '-inf', horizon)
    if #old > 0 then
      local gone = 0
      for _, m in ipairs(old) do gone = gone + tonumber(string.match(m, ':(-?%d+)$')) end
      redis.call('DECRBY', skey, int(gone))
      redis.call('ZREMRANGEBYSCORE', tkey, '-inf', horizon)
    end
    local sum = tonumber(redis.call('GET', skey) or '0')
    if sum > 0 and sum + estimate > tonumber(tpm) then
      local oldest = redis.call('ZRANGE', tkey, 0, 0, 'WITHSCORES')
      local wait = 1
      if #oldest > 0 then wait = (tonumber(oldest[2]) + 60000 - now) / 1000 end
      return {'tpm', tostring(wait)}
    end
  end
  if rpm ~= '' then
    redis.call('ZADD', rkey, now, member)
    redis.call('PEXPIRE', rkey, 61000)
  end
  if tpm ~= '' and estimate ~= 0 then
    redis.call('ZADD', tkey, now, member .. ':' .. int(estimate))
    redis.call('INCRBY', skey, int(estimate))
    redis.call('PEXPIRE', tkey, 61000)
    redis.call('PEXPIRE', skey, 61000)
  end
  return nil
end
"""

#: KEYS: breaker hash, totals hash, requests zset, tokens zset, tokens sum.
#: ARGV: now ('' = TIME), provider name ('' = a scope without breaker or budgets),
#: router budget and provider budget in micro-roubles ('' = none), requests per minute and
#: tokens per minute ('' = none), estimated tokens, unique member id.
#: Returns {verdict, seconds, spent, provider cost, trips}; verdict 'ok', 'held', 'open',
#: 'budget', 'provider_budget', 'rpm' or 'tpm'; money in micro-roubles.
ADMIT = (
    _COMMON
    + """
local now = now_ms(ARGV[1])
local name = ARGV[2]
local spent = tonumber(redis.call('HGET', KEYS[2], 'spent') or '0')
local cost = 0
local trips = 0
if name ~= '' then
  cost = tonumber(redis.call('HGET', KEYS[2], 'cost:' .. name) or '0')
  local b = redis.call('HMGET', KEYS[1], 'open_until', 'hold_until', 'trips')
  trips = tonumber(b[3] or '0')
  if b[2] and tonumber(b[2]) > now then
    return {'held', tostring((tonumber(b[2]) - now) / 1000), int(spent), int(cost), trips}
  end
  if b[1] and tonumber(b[1]) > now then
    return {'open', tostring((tonumber(b[1]) - now) / 1000), int(spent), int(cost), trips}
  end
  if ARGV[3] ~= '' and spent >= tonumber(ARGV[3]) then
    return {'budget', '0', int(spent), int(cost), trips}
  end
  if ARGV[4] ~= '' and cost >= tonumber(ARGV[4]) then
    return {'provider_budget', '0', int(spent), int(cost), trips}
  end
end
local refused = window_admit(KEYS[3], KEYS[4], KEYS[5], ARGV[5], ARGV[6],
                             tonumber(ARGV[7]), ARGV[8], now)
if refused then
  return {refused[1], refused[2], int(spent), int(cost), trips}
end
return {'ok', '0', int(spent), int(cost), trips}
"""
)

#: KEYS: totals hash, this router's own totals hash, then one breaker hash per breaker
#: entry, then (tokens zset, tokens sum) per correction.
#: ARGV: now, #fields, #breakers, #corrections, then field/absolute-value pairs, then per
#: breaker (state, open ms, held ms, trips), then per correction (delta, member).
#: Totals are pushed as this router's absolute values and added to the shared totals as
#: the difference from what it pushed before: retrying a push (a lost reply) or pushing
#: again after Redis lost everything counts each router's usage exactly once.
#: Returns the shared totals as a flat field/value list.
SYNC = (
    _COMMON
    + """
local now = now_ms(ARGV[1])
local nfields, nbreakers, ncorr = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local a = 5
for _ = 1, nfields do
  local field, value = ARGV[a], tonumber(ARGV[a + 1])
  local old = tonumber(redis.call('HGET', KEYS[2], field) or '0')
  if value ~= old then
    redis.call('HINCRBY', KEYS[1], field, int(value - old))
    redis.call('HSET', KEYS[2], field, ARGV[a + 1])
  end
  a = a + 2
end
for i = 1, nbreakers do
  local key = KEYS[2 + i]
  local state, open_ms, held_ms, trips = ARGV[a], tonumber(ARGV[a + 1]),
    tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  a = a + 4
  local b = redis.call('HMGET', key, 'open_until', 'hold_until', 'trips')
  local open_until, hold_until = tonumber(b[1] or '0'), tonumber(b[2] or '0')
  if state == 'open' and now + open_ms > open_until then
    open_until = now + open_ms
    redis.call('HSET', key, 'open_until', int(open_until),
               'trips', int(math.max(trips, tonumber(b[3] or '0'))))
  elseif state == 'closed' and open_until <= now then
    redis.call('HDEL', key, 'open_until', 'trips')
    open_until = 0
  end
  if held_ms > 0 and now + held_ms > hold_until then
    hold_until = now + held_ms
    redis.call('HSET', key, 'hold_until', int(hold_until))
  end
  local last = math.max(open_until, hold_until)
  if redis.call('EXISTS', key) == 1 then
    -- Outlives its cooldown so that trips (the cooldown's doubling) survive half-open.
    redis.call('PEXPIRE', key, math.max(last - now, 0) + 3600000)
  end
end
local k = 2 + nbreakers
for _ = 1, ncorr do
  local delta, member = tonumber(ARGV[a]), ARGV[a + 1]
  a = a + 2
  redis.call('ZADD', KEYS[k + 1], now, member .. ':' .. int(delta))
  redis.call('INCRBY', KEYS[k + 2], int(delta))
  redis.call('PEXPIRE', KEYS[k + 1], 61000)
  redis.call('PEXPIRE', KEYS[k + 2], 61000)
  k = k + 2
end
return redis.call('HGETALL', KEYS[1])
"""
)
