-- Settle or release a reservation exactly once: the marker KEYS[n+1] is
-- deleted by the first call; later calls change nothing. lib.lua (the
-- str helper) is prepended.
--
-- It also gives back what a lease did not use (see lease.go): its request
-- windows and lifetime counter, or its token windows.
--
-- KEYS[1..n] window hashes (see admit.lua), KEYS[n+1] the marker,
-- KEYS[n+2] the lifetime counter (when ARGV[5] > 0)
-- ARGV[1] now in ms (0: server TIME)  ARGV[2] n  ARGV[3] delta (actual - reserved)
-- ARGV[4] 1 when the admission wrote the marker (a reservation of 0 tokens
-- and a lease have none: only local state makes them exactly-once)
-- ARGV[5] requests to take off the lifetime counter (0: none)
-- then per window: bucket ms, buckets, bucket the reservation was charged to
-- Returns 1 when applied, 0 when already settled (or expired).

local n = tonumber(ARGV[2])
if ARGV[4] == '1' and redis.call('DEL', KEYS[n + 1]) == 0 then return 0 end
local back = tonumber(ARGV[5])
if back > 0 and redis.call('EXISTS', KEYS[n + 2]) == 1 then
  redis.call('DECRBY', KEYS[n + 2], str(back)) -- keeps the counter's TTL
end
local now = tonumber(ARGV[1])
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local delta = tonumber(ARGV[3])
if delta == 0 then return 1 end

-- As in admit.lua, Redis calls are the cost: one HMGET (state, the current
-- bucket and the charged one), one HSET, PEXPIRE only when the newest bucket
-- moves.
for i = 1, n do
  local a = 5 + (i - 1) * 3
  local bms, nb, b = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local bf = ARGV[a + 3] -- the bucket as a field name, as Go sent it
  local key = KEYS[i]
  local cur = math.floor(now / bms)
  local st = redis.call('HMGET', key, 't', 'o', 'l', 'w', str(cur), bf)
  local total, o, l, w = tonumber(st[1]) or 0, tonumber(st[2]), tonumber(st[3]), tonumber(st[4]) or -1
  local curv, bv = tonumber(st[5]) or 0, tonumber(st[6]) or 0
  if o ~= nil or delta > 0 then -- nothing to give back to a key that expired
    if l and l > cur then
      cur = l
      curv = tonumber(redis.call('HGET', key, str(cur))) or 0
    end
    local first = cur - nb
    if o ~= nil and l < first then
      redis.call('DEL', key)
      total, o, l, w, curv = 0, nil, nil, -1, 0
    elseif o ~= nil then
      for j = o, first - 1 do
        local v = tonumber(redis.call('HGET', key, str(j)))
        if v then
          total = total - v
          redis.call('HDEL', key, str(j))
        end
      end
    end
    local field, value = nil, nil
    if delta < 0 then
      if o ~= nil and b >= first and b <= cur then
        local d = math.min(-delta, bv)
        if d > 0 then
          field, value = b, bv - d
          total = total - d
        end
      end
    else
      field, value = cur, curv + delta
      total = total + delta
      w = cur
    end
    if total < 0 then total = 0 end
    if o ~= nil or delta > 0 then
      if field ~= nil then
        redis.call('HSET', key, 't', str(total), 'o', str(first), 'l', str(cur), 'w', str(w), str(field), str(value))
      else
        redis.call('HSET', key, 't', str(total), 'o', str(first), 'l', str(cur), 'w', str(w))
      end
      if l ~= cur then
        redis.call('PEXPIRE', key, str((nb + 2) * bms))
      end
    end
  end
end
return 1
