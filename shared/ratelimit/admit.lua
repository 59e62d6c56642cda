-- Admit one request: every window of the token and of its project, and the
-- lifetime quota, checked and consumed atomically (all or nothing). lib.lua
-- (the str helper) is prepended.
--
-- KEYS[1..n]   window hashes (fields: bucket index -> usage, t = total,
--              o = oldest tracked bucket, l = newest bucket seen,
--              w = newest bucket charged)
-- KEYS[n+1]    lifetime counter (when ARGV[3] > 0)
-- KEYS[n+2]    reservation marker (when ARGV[6] ~= "")
-- KEYS[n+3]    admission marker: this admission's reply once it charged, or
--              "x" once cancel.lua cancelled it (see redis.go)
-- ARGV[1] now in ms (0: use the server's TIME)   ARGV[2] n
-- ARGV[3] lifetime max (0: none)  ARGV[4] lifetime seed  ARGV[5] lifetime ttl ms
-- ARGV[6] reservation marker ttl ms (0: none)
-- ARGV[7] lease: the most requests to charge at once (<= 1: none)
-- ARGV[8] lease share: a lease takes at most 1/share of what any limit has left
-- ARGV[9] lease floor ms: no lease when a charged bucket ends sooner
-- ARGV[10] admission marker ttl ms
-- then per window: limit, bucket ms, buckets, amount, enforced (1/0)
-- Returns {allowed, quota, now, leased, then per window: total, refuse,
-- retry ms, reset ms, bucket}. leased is how many requests were charged
-- (every window amount × leased, the lifetime counter leased): 1, or a lease
-- of k >= 2 that the caller hands out itself (no reservation marker then).
-- The same admission run again (a copy of the call that reached the server
-- late, or a retry) charges nothing and returns the first run's reply; one
-- run after its cancellation charges nothing and returns {-1}.

local n = tonumber(ARGV[2])
local prev = redis.call('GET', KEYS[n + 3])
if prev == 'x' then return {-1} end
if prev then
  local again = {}
  for v in string.gmatch(prev, '%S+') do again[#again + 1] = tonumber(v) end
  return again
end

local now = tonumber(ARGV[1])
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Redis calls are the script's cost (each is a few µs of the server's single
-- thread): a window takes one HMGET (its state and the current bucket) and
-- one HSET (state and bucket together); PEXPIRE only when the newest bucket
-- moves (the key then lives (buckets + 2) bucket lengths past it, long
-- enough for every bucket it holds).
--
-- load evicts buckets that left the window and returns total, cur, first,
-- w, the current bucket's value, and l (nil: the key does not exist).
local function load(key, bms, nb)
  local cur = math.floor(now / bms)
  local st = redis.call('HMGET', key, 't', 'o', 'l', 'w', str(cur))
  local total, o, l, w = tonumber(st[1]) or 0, tonumber(st[2]), tonumber(st[3]), tonumber(st[4]) or -1
  local curv = tonumber(st[5]) or 0
  if l and l > cur then -- a caller with a clock behind: keep the newest bucket
    cur = l
    curv = tonumber(redis.call('HGET', key, str(cur))) or 0
  end
  local first = cur - nb
  if o == nil then return 0, cur, first, -1, 0, nil end
  if l < first then
    redis.call('DEL', key)
    return 0, cur, first, -1, 0, nil
  end
  for i = o, first - 1 do
    local v = tonumber(redis.call('HGET', key, str(i)))
    if v then
      total = total - v
      redis.call('HDEL', key, str(i))
    end
  end
  if total < 0 then total = 0 end
  return total, cur, first, w, curv, l
end

local out = {0, 0, now, 1}
local st = {}
local refused = false
for i = 1, n do
  local a = 10 + (i - 1) * 5
  local limit, bms, nb = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local amount, enforced = tonumber(ARGV[a + 4]), ARGV[a + 5] == '1'
  local key = KEYS[i]
  local total, cur, first, w, curv, l = load(key, bms, nb)
  local s = {key = key, limit = limit, total = total, cur = cur, first = first, w = w, curv = curv, l = l, bms = bms, nb = nb, amount = amount}
  st[i] = s
  s.refuse, s.retry = 0, 0
  if enforced and total + amount > limit then
    refused = true
    s.refuse = 1
    if amount > limit then
      s.retry = nb * bms
    else
      local need, freed = total + amount - limit, 0
      s.retry = nb * bms
      for b = first, cur do
        freed = freed + (tonumber(redis.call('HGET', key, str(b))) or 0)
        if freed >= need then
          s.retry = (b + nb + 1) * bms - now
          break
        end
      end
    end
  end
end

local lkey = KEYS[n + 1]
local lmax = tonumber(ARGV[3])
local quota, life, seeded = false, 0, false
if lmax > 0 then
  life = tonumber(redis.call('GET', lkey))
  local seed = tonumber(ARGV[4])
  seeded = life == nil or life < seed
  if seeded then life = seed end
  quota = life >= lmax
end
local allowed = not refused and not quota

-- A lease: k requests charged at once, when every limit keeps at least
-- share × what the lease takes and no charged bucket ends within the floor
-- (the caller hands leased requests out only until the bucket ends).
local k = 1
if allowed and tonumber(ARGV[7]) > 1 then
  k = tonumber(ARGV[7])
  local share, floor = tonumber(ARGV[8]), tonumber(ARGV[9])
  for i = 1, n do
    local s = st[i]
    if s.amount > 0 then
      k = math.min(k, math.floor((s.limit - s.total) / (s.amount * share)))
      if (s.cur + 1) * s.bms - now < floor then k = 1 end
    end
  end
  if lmax > 0 then k = math.min(k, math.floor((lmax - life) / share)) end
  if k < 2 then k = 1 end
end

if lmax > 0 then
  if allowed then
    redis.call('SET', lkey, str(life + k), 'PX', ARGV[5]) -- counted and its TTL renewed in one call
  elseif seeded then
    redis.call('SET', lkey, str(life), 'PX', ARGV[5])
  end
end

if allowed and k == 1 and ARGV[6] ~= '0' then
  redis.call('SET', KEYS[n + 2], '1', 'PX', ARGV[6])
end

for i = 1, n do
  local s = st[i]
  local written = true
  local charge = 0
  if allowed then charge = s.amount * k end
  if charge > 0 then
    s.total = s.total + charge
    s.w = s.cur
    redis.call('HSET', s.key, 't', str(s.total), 'o', str(s.first), 'l', str(s.cur), 'w', str(s.w), str(s.cur), str(s.curv + charge))
  elseif s.l ~= nil then -- the key exists: record the eviction and the newest bucket
    redis.call('HSET', s.key, 't', str(s.total), 'o', str(s.first), 'l', str(s.cur), 'w', str(s.w))
  else
    written = false
  end
  if written and s.l ~= s.cur then
    redis.call('PEXPIRE', s.key, str((s.nb + 2) * s.bms))
  end
  local reset = 0
  if s.total > 0 and s.w >= s.first then reset = (s.w + s.nb + 1) * s.bms - now end
  out[#out + 1] = s.total - charge
  out[#out + 1] = s.refuse
  out[#out + 1] = s.retry
  out[#out + 1] = reset
  out[#out + 1] = s.cur
end
if allowed then out[1] = 1 end
if quota then out[2] = 1 end
out[4] = k
if allowed then -- what it charged, for a run again and for cancel.lua
  local parts = {}
  for i = 1, #out do parts[i] = str(out[i]) end
  redis.call('SET', KEYS[n + 3], table.concat(parts, ' '), 'PX', ARGV[10])
end
return out
