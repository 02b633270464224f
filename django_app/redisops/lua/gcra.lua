-- Token bucket as GCRA (generic cell rate algorithm). One round trip, atomic,
-- Redis's clock (TIME). State: one key holding the theoretical arrival time.
-- KEYS[1] TAT key
-- ARGV[1] limit (bucket size = burst), ARGV[2] period (ms) to refill `limit`
-- Returns {allowed (0/1), remaining, reset_after_ms, retry_after_ms}
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local period_us = tonumber(ARGV[2]) * 1000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local emission = period_us / limit          -- one token every `emission` us
local tolerance = period_us                 -- burst = limit tokens
local tat = tonumber(redis.call('GET', key) or now)
if tat < now then tat = now end
local new_tat = tat + emission
local allow_at = new_tat - tolerance
if now < allow_at then
  return {0, 0, math.ceil((tat - now) / 1000), math.max(1, math.ceil((allow_at - now) / 1000))}
end
redis.call('SET', key, string.format('%.0f', new_tat), 'PX', math.max(1, math.ceil((new_tat - now) / 1000)))
local remaining = math.floor((now - allow_at) / emission)
return {1, remaining, math.ceil((new_tat - now) / 1000), 0}
