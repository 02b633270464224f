-- Token bucket as GCRA (generic cell rate algorithm). One round trip, atomic,
-- Redis's clock: redis.call('TIME'). State: one key holding the theoretical
-- arrival time (TAT, microseconds). Hot path: TIME + GET + SET.
-- KEYS[1] TAT key
-- ARGV[1] limit (bucket size = burst), ARGV[2] period (ms) to refill `limit`
-- Returns, admitted: one integer, remaining * (period + 1) + reset_after_ms
-- (ratelimit.py splits it; one integer costs Redis and the client less than
-- an array); denied: {retry_after_ms, reset_after_ms}.
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local limit = tonumber(ARGV[1])
local period_ms = tonumber(ARGV[2])
local period_us = period_ms * 1000
local emission = period_us / limit -- one token every `emission` us; burst = limit
-- The backlog (TAT - now, 0 when the bucket is full) rather than absolute
-- times: small numbers, so the sums stay exact to far below a microsecond
-- (an absolute time as a double resolves only 0.25 us).
local backlog = (tonumber(redis.call('GET', KEYS[1])) or now) - now
if backlog < 0 then backlog = 0 end
local new_backlog = backlog + emission
if new_backlog > period_us then
  return {math.ceil((new_backlog - period_us) / 1000), math.ceil(backlog / 1000)}
end
-- <= period; the clamp keeps the integer reply decodable whatever the rounding.
local reset_ms = math.min(period_ms, math.max(1, math.ceil(new_backlog / 1000)))
-- The TAT as a Lua number: redis.call writes it with 17 significant digits, so
-- GET and tonumber give it back as it was, fractions of a microsecond included.
redis.call('SET', KEYS[1], now + new_backlog, 'PX', reset_ms)
-- Whole tokens left; the 1e-6 absorbs the division's rounding (x.9999999).
local remaining = math.floor((period_us - new_backlog) / emission + 1e-6)
return math.min(limit - 1, remaining) * (period_ms + 1) + reset_ms
