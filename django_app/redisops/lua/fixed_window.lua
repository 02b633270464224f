-- Fixed window counter. One round trip, atomic, Redis's clock.
-- KEYS[1] counter key
-- ARGV[1] limit, ARGV[2] window (ms)
-- Returns {allowed (0/1), remaining, reset_after_ms, retry_after_ms}
-- The expiry is set only when the window starts (first admitted hit), never
-- pushed forward by later hits, so the key resets under steady traffic.
-- Rejected hits are not counted.
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])

local count = tonumber(redis.call('GET', key) or '0')
local ttl = redis.call('PTTL', key)
if count > 0 and ttl < 0 then
  -- A counter without expiry would block for ever: restart its window.
  redis.call('PEXPIRE', key, window)
  ttl = window
end
if count < limit then
  count = redis.call('INCR', key)
  if count == 1 then
    redis.call('PEXPIRE', key, window)
    ttl = window
  end
  return {1, limit - count, ttl, 0}
end
return {0, 0, ttl, ttl}
