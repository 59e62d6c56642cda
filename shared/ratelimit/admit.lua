-- Admit one request: every window of the token and of its project, and the
-- lifetime quota, checked and consumed atomically (all or nothing).
--
-- KEYS[1..n]   window hashes (fields: bucket index -> usage, t = total,
--              o = oldest tracked bucket, l = newest bucket seen,
--              w = newest bucket charged)
-- KEYS[n+1]    lifetime counter (when ARGV[3] > 0)
-- KEYS[n+2]    reservation marker (when ARGV[6] ~= "")
-- ARGV[1] now in ms (0: use the server's TIME)   ARGV[2] n
-- ARGV[3] lifetime max (0: none)  ARGV[4] lifetime seed  ARGV[5] lifetime ttl ms
-- ARGV[6] reservation marker ttl ms (0: none)
-- then per window: limit, bucket ms, buckets, amount, enforced (1/0)
-- Returns {allowed, quota, now, then per window: total, refuse, retry ms, reset ms, bucket}

local now = tonumber(ARGV[1])
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local n = tonumber(ARGV[2])

-- load evicts buckets that left the window and returns total, cur, first, w.
local function load(key, bms, nb)
  local st = redis.call('HMGET', key, 't', 'o', 'l', 'w')
  local total, o, l, w = tonumber(st[1]) or 0, tonumber(st[2]), tonumber(st[3]), tonumber(st[4]) or -1
  local cur = math.floor(now / bms)
  if l and l > cur then cur = l end
  local first = cur - nb
  if o == nil then return 0, cur, first, -1 end
  if l < first then
    redis.call('DEL', key)
    return 0, cur, first, -1
  end
  for i = o, first - 1 do
    local v = tonumber(redis.call('HGET', key, i))
    if v then
      total = total - v
      redis.call('HDEL', key, i)
    end
  end
  if total < 0 then total = 0 end
  return total, cur, first, w
end

local function store(key, total, first, cur, w, bms, nb)
  redis.call('HSET', key, 't', total, 'o', first, 'l', cur, 'w', w)
  redis.call('PEXPIRE', key, (nb + 2) * bms)
end

local out = {0, 0, now}
local st = {}
local refused = false
for i = 1, n do
  local a = 6 + (i - 1) * 5
  local limit, bms, nb = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local amount, enforced = tonumber(ARGV[a + 4]), ARGV[a + 5] == '1'
  local key = KEYS[i]
  local total, cur, first, w = load(key, bms, nb)
  local s = {key = key, total = total, cur = cur, first = first, w = w, bms = bms, nb = nb, amount = amount}
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
        freed = freed + (tonumber(redis.call('HGET', key, b)) or 0)
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
local quota = false
if lmax > 0 then
  local c = tonumber(redis.call('GET', lkey))
  local seed = tonumber(ARGV[4])
  if c == nil or c < seed then
    redis.call('SET', lkey, seed, 'PX', ARGV[5])
    c = seed
  end
  quota = c >= lmax
end

local allowed = not refused and not quota
if allowed then
  if lmax > 0 then
    redis.call('INCR', lkey)
    redis.call('PEXPIRE', lkey, ARGV[5])
  end
  if ARGV[6] ~= '0' then
    redis.call('SET', KEYS[n + 2], '1', 'PX', ARGV[6])
  end
end

for i = 1, n do
  local s = st[i]
  if allowed and s.amount > 0 then
    redis.call('HINCRBY', s.key, s.cur, s.amount)
    s.total = s.total + s.amount
    s.w = s.cur
  end
  if s.total > 0 or redis.call('EXISTS', s.key) == 1 then
    store(s.key, s.total, s.first, s.cur, s.w, s.bms, s.nb)
  end
  local reset = 0
  if s.total > 0 and s.w >= s.first then reset = (s.w + s.nb + 1) * s.bms - now end
  out[#out + 1] = s.total - ((allowed and s.amount) or 0)
  out[#out + 1] = s.refuse
  out[#out + 1] = s.retry
  out[#out + 1] = reset
  out[#out + 1] = s.cur
end
if allowed then out[1] = 1 end
if quota then out[2] = 1 end
return out
