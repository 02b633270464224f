-- Sliding window log. One round trip, atomic, Redis's clock (TIME).
-- KEYS[1] sorted set of admitted requests (score = microseconds)
-- ARGV[1] limit, ARGV[2] window (ms), ARGV[3] unique member for this request
-- Returns {allowed (0/1), remaining, reset_after_ms, retry_after_ms}
-- Only admitted requests are recorded, so a client that keeps retrying is let
-- through again as soon as old requests leave the window. Members are unique
-- (passed in), so two requests in the same microsecond both count.
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window_us = tonumber(ARGV[2]) * 1000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window_us)
local count = redis.call('ZCARD', key)
if count < limit then
  redis.call('ZADD', key, now, ARGV[3])
  redis.call('PEXPIRE', key, tonumber(ARGV[2]))
  count = count + 1
  local newest = now
  return {1, limit - count, math.ceil((newest + window_us - now) / 1000), 0}
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
local retry_us = tonumber(oldest[2]) + window_us - now
local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
local reset_us = tonumber(newest[2]) + window_us - now
return {0, 0, math.ceil(reset_us / 1000), math.max(1, math.ceil(retry_us / 1000))}
