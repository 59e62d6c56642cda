-- Cancel one admission whose reply was lost (a timeout, a closed
-- connection): whether admit.lua ran before this, runs after it or never
-- runs, the admission ends up charging nothing. lib.lua (the str helper) is
-- prepended.
--
-- KEYS[1..n] the admission's window hashes, KEYS[n+1] its lifetime counter,
-- KEYS[n+2] its reservation marker, KEYS[n+3] its admission marker
-- ARGV[1] n  ARGV[2] admission marker ttl ms  ARGV[3] 1 when the admission
-- counted the lifetime quota
-- then per window: the amount the admission charged per request
-- Returns 1 when a charge was given back, 0 otherwise (not charged, or
-- already cancelled).
--
-- The marker becomes "x": an admission arriving later returns {-1} and
-- charges nothing, and a second cancel changes nothing.

local n = tonumber(ARGV[1])
local marker = KEYS[n + 3]
local v = redis.call('GET', marker)
if v == 'x' then return 0 end
redis.call('SET', marker, 'x', 'PX', ARGV[2])
if not v then return 0 end

local reply = {}
for x in string.gmatch(v, '%S+') do reply[#reply + 1] = tonumber(x) end
if reply[1] ~= 1 then return 0 end
local k = reply[4]
-- A charge stays in the bucket it was made to until that bucket leaves
-- the window (admit.lua evicts it, total included): give it back there
-- when it is still held.
for i = 1, n do
  local charge = tonumber(ARGV[3 + i]) * k
  local b = str(reply[4 + 5 * i])
  if charge > 0 then
    local bv = tonumber(redis.call('HGET', KEYS[i], b))
    if bv then
      local d = math.min(charge, bv)
      redis.call('HINCRBY', KEYS[i], b, str(-d))
      redis.call('HINCRBY', KEYS[i], 't', str(-d))
    end
  end
end
if ARGV[3] == '1' and redis.call('EXISTS', KEYS[n + 1]) == 1 then
  redis.call('DECRBY', KEYS[n + 1], str(k)) -- keeps the counter's TTL
end
redis.call('DEL', KEYS[n + 2])
return 1
