-- Token bucket as GCRA (generic cell rate algorithm). One round trip, atomic,
-- Redis's clock: redis.call('TIME'). State: one key holding the theoretical
-- arrival time (TAT, microseconds). Hot path: TIME + GET + SET.
-- KEYS[1] TAT key
-- ARGV[1] limit (bucket size = burst), ARGV[2] period (ms) to refill `limit`
-- Returns {allowed (0/1), remaining, reset_after_ms, retry_after_ms}
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local limit = tonumber(ARGV[1])
local period_us = ARGV[2] * 1000
local emission = period_us / limit -- one token every `emission` us; burst = limit
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + emission
local allow_at = new_tat - period_us
if now < allow_at then
  return {0, 0, math.ceil((tat - now) / 1000), math.ceil((allow_at - now) / 1000)}
end
local reset_ms = math.max(1, math.ceil((new_tat - now) / 1000))
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', reset_ms)
return {1, math.floor((now - allow_at) / emission), reset_ms, 0}
