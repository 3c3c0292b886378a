"""The Lua scripts of the Redis store: each `Store` method that reads and writes is one script, so it runs
atomically on the server (no other client's command interleaves) in one round trip.

Every key of a scope starts with ``KEYS[1]`` = ``chatlog:{<scope>}:`` (the braces are a Redis Cluster hash
tag: all of a scope's keys live in one slot, so a script may touch them together):

- ``epoch`` — string; names this copy of the data (a restarted, emptied Redis gets a new one);
- ``members`` — sorted set, member id → last seen (pruned to the last day);
- ``w:<member id>`` — hash per member: ``pid host d x m`` (``d``/``x``/``m``: its records settled as
  delivered / dropped / muted); it expires with the member, so a fleet that restarts often leaves
  nothing behind;
- ``g:<fingerprint>`` — hash per group: ``level first last total sample shown unsettled`` and
  ``m:<member id>`` → that member's unsettled records; ``pending`` — set of fingerprints with unsettled ones;
- ``o:<member id>`` — hash, fingerprint → the member's unsettled records (its hand-over answer in one read);
- ``lease`` — hash ``holder until``; ``sent`` — sorted set of send times (the budget); ``seq`` — counter;
- ``info`` — hash ``masked last_send last_error last_error_at``; ``quota`` — hash period → sends.

Every write refreshes the key's expiry (``ARGV`` ``forget_ms``, a day): a scope no process uses any more
disappears by itself. Times are the callers' Unix seconds, passed as exact decimal strings.
"""

from __future__ import annotations

_PENDING_RECORDS = """
local function pending_records(p)
  local total = 0
  for _, fp in ipairs(redis.call('SMEMBERS', p..'pending')) do
    total = total + tonumber(redis.call('HGET', p..'g:'..fp, 'unsettled') or '0')
  end
  return total
end
"""

HAND_OVER = _PENDING_RECORDS + """
local p, member, now, forget = KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[4])
local span = tonumber(ARGV[9])
local epoch = redis.call('GET', p..'epoch')
if not epoch then epoch = ARGV[3]; redis.call('SET', p..'epoch', epoch) end
redis.call('PEXPIRE', p..'epoch', forget)
redis.call('ZADD', p..'members', ARGV[2], member)
redis.call('ZREMRANGEBYSCORE', p..'members', '-inf', '(' .. (now - forget / 1000))
local w = p..'w:'..member
redis.call('HSET', w, 'pid', ARGV[6], 'host', ARGV[7])
local out, i = p..'o:'..member, 10
for _ = 1, tonumber(ARGV[8]) do
  local fp, count, first, last, level = ARGV[i], tonumber(ARGV[i+1]), ARGV[i+2], ARGV[i+3], ARGV[i+4]
  local g = p..'g:'..fp
  local old = redis.call('HMGET', g, 'first', 'last', 'level', 'unsettled')
  if not old[1] or tonumber(old[4] or '0') <= 0 or tonumber(first) < tonumber(old[1]) then
    redis.call('HSET', g, 'first', first)
  end
  if not old[2] or tonumber(last) > tonumber(old[2]) then redis.call('HSET', g, 'last', last) end
  if not old[3] or tonumber(level) > tonumber(old[3]) then redis.call('HSET', g, 'level', level) end
  if ARGV[i+5] == '1' then redis.call('HSETNX', g, 'sample', ARGV[i+6]) end
  redis.call('HINCRBY', g, 'total', count)
  if count > 0 then
    redis.call('HINCRBY', g, 'm:'..member, count)
    redis.call('HINCRBY', g, 'unsettled', count)
    redis.call('HINCRBY', out, fp, count)
    redis.call('SADD', p..'pending', fp)
  end
  redis.call('PEXPIRE', g, forget)
  i = i + 7
end
for _, key in ipairs({p..'members', p..'pending', out, w}) do redis.call('PEXPIRE', key, forget) end
local credits = redis.call('HMGET', w, 'd', 'x', 'm')
local lease = redis.call('HMGET', p..'lease', 'holder', 'until')
local leader = ''
if lease[1] and tonumber(lease[2]) > now then leader = lease[1] end
return {epoch, redis.call('HGETALL', out), credits[1] or '0', credits[2] or '0', credits[3] or '0',
        redis.call('ZCOUNT', p..'members', '(' .. ARGV[5], '+inf'), leader,
        pending_records(p), redis.call('ZCOUNT', p..'sent', '(' .. (now - span), '+inf')}
"""
"""ARGV: member id, now, a new epoch (used when there is none), forget_ms, now - MEMBER_LIVE_S,
pid, host, number of deltas, BUDGET_SPAN_S, then 7 per delta: fingerprint, count, first, last,
level, has sample (``1``/``0``), sample."""

LEASE = """
local k, member = KEYS[1]..'lease', ARGV[1]
local held = redis.call('HMGET', k, 'holder', 'until')
if held[1] and held[1] ~= member and tonumber(held[2]) > tonumber(ARGV[2]) then return 0 end
redis.call('HSET', k, 'holder', member, 'until', ARGV[3])
redis.call('PEXPIRE', k, ARGV[4])
return 1
"""
"""ARGV: member id, now, now + ttl, forget_ms. SET NX PX cannot say "free, expired on the callers' clock,
or mine": the holder and its deadline are compared in one step instead."""

RELEASE = """
local p, member = KEYS[1], ARGV[1]
if redis.call('HGET', p..'lease', 'holder') == member then redis.call('DEL', p..'lease') end
redis.call('ZREM', p..'members', member)
return 1
"""

PENDING = """
local p, result = KEYS[1], {}
for _, fp in ipairs(redis.call('SMEMBERS', p..'pending')) do
  local group = redis.call('HGETALL', p..'g:'..fp)
  if #group == 0 then redis.call('SREM', p..'pending', fp) else table.insert(result, {fp, group}) end
end
return result
"""

SETTLE = """
local function decrement(key, field, n)
  if redis.call('HINCRBY', key, field, -n) <= 0 then redis.call('HDEL', key, field) end
end
local p, now, forget = KEYS[1], ARGV[1], tonumber(ARGV[3])
local lease = redis.call('HMGET', p..'lease', 'holder', 'until')
if lease[1] and lease[1] ~= ARGV[5] and tonumber(lease[2]) > tonumber(now) then return 0 end
local credit = ARGV[2]
local i = 6
for _ = 1, tonumber(ARGV[4]) do
  local fp, g = ARGV[i], p..'g:'..ARGV[i]
  local members = tonumber(ARGV[i+1])
  i = i + 2
  for _ = 1, members do
    local member, n = ARGV[i], tonumber(ARGV[i+1])
    local have = tonumber(redis.call('HGET', g, 'm:'..member) or '0')
    local take = math.min(have, n)
    if take > 0 then
      decrement(g, 'm:'..member, take)
      redis.call('HINCRBY', g, 'unsettled', -take)
      decrement(p..'o:'..member, fp, take)
      redis.call('HINCRBY', p..'w:'..member, credit, take)
      redis.call('PEXPIRE', p..'w:'..member, forget)
    end
    i = i + 2
  end
  if tonumber(redis.call('HGET', g, 'unsettled') or '0') <= 0 then redis.call('SREM', p..'pending', fp) end
end
if credit == 'd' then
  for j = i, #ARGV do
    if redis.call('EXISTS', p..'g:'..ARGV[j]) == 1 then redis.call('HSET', p..'g:'..ARGV[j], 'shown', now) end
  end
  redis.call('HSET', p..'info', 'last_send', now)
end
redis.call('PEXPIRE', p..'info', forget)
return 1
"""
"""ARGV: now, the credit (``d`` delivered, ``x`` dropped, ``m`` muted), forget_ms, number of groups, the
settling member, then per group: fingerprint, number of members, (member id, count) per member; then
the shown fingerprints. Refused (0, nothing changed) while another member holds the lease: a leader
that lost it must not settle."""

TAKE_BUDGET = """
local k, now, count = KEYS[1]..'sent', tonumber(ARGV[1]), tonumber(ARGV[2])
local span = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', k, '-inf', '(' .. (now - span))
redis.call('ZREMRANGEBYSCORE', k, '(' .. (now + span), '+inf')
local wait = 0
if ARGV[3] ~= '1' then
  for j = 6, #ARGV, 2 do
    local limit, window = math.max(1, tonumber(ARGV[j])), tonumber(ARGV[j+1])
    local inside = redis.call('ZRANGEBYSCORE', k, '(' .. (now - window), '+inf', 'WITHSCORES')
    local excess = #inside / 2 + count - limit
    if excess > 0 and #inside > 0 then
      local at = tonumber(inside[2 * math.min(excess, #inside / 2)])
      wait = math.max(wait, at + window - now)
    end
  end
end
if wait > 0 then return tostring(wait) end
for _ = 1, count do
  redis.call('ZADD', k, ARGV[1], ARGV[1] .. ':' .. redis.call('INCR', KEYS[1]..'seq'))
end
redis.call('PEXPIRE', k, ARGV[5])
redis.call('PEXPIRE', KEYS[1]..'seq', ARGV[5])
return '0'
"""
"""ARGV: now, count, force (``1``/``0``), BUDGET_SPAN_S, forget_ms, then (limit, window_s) pairs. Sends
"in the future" (another host's clock runs ahead) count; ones more than a span ahead (a clock that
jumped back) are forgotten."""

STATUS = _PENDING_RECORDS + """
local p, now = KEYS[1], tonumber(ARGV[1])
local members = redis.call('ZREVRANGEBYSCORE', p..'members', '+inf', '(' .. ARGV[2], 'WITHSCORES')
local who = {}
for j = 1, #members, 2 do
  local known = redis.call('HMGET', p..'w:'..members[j], 'pid', 'host')
  who[#who + 1] = {known[1] or '0', known[2] or ''}
end
local lease = redis.call('HMGET', p..'lease', 'holder', 'until')
if not (lease[1] and tonumber(lease[2]) > now) then lease = {'', ''} end
local info = redis.call('HMGET', p..'info', 'masked', 'last_send', 'last_error', 'last_error_at')
for j = 1, 4 do info[j] = info[j] or '' end
return {members, who, lease, redis.call('SCARD', p..'pending'), pending_records(p), info,
        redis.call('ZCOUNT', p..'sent', '(' .. ARGV[3], '+inf')}
"""
"""ARGV: now, now - MEMBER_LIVE_S, now - BUDGET_SPAN_S."""
