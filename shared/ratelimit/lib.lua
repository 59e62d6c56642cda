-- Shared by admit.lua and settle.lua: Go prepends it to each.
--
-- Numbers go to redis.call as strings made with %d: Redis 7.0 converts a
-- number argument with %.17g, which costs more than the call itself.
local function str(n) return string.format('%d', n) end
