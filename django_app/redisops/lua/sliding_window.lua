-- Sliding window log. One round trip, atomic, Redis's clock: redis.call('TIME').
-- KEYS[1] sorted set of admitted requests (score = microseconds)
-- ARGV[1] limit, ARGV[2] window (ms), ARGV[3] unique member for this request
-- Returns, admitted: one integer, remaining * (window + 1) + reset_after_ms
-- (ratelimit.py splits it; one integer costs Redis and the client less than
-- an array); denied: {retry_after_ms, reset_after_ms}.
-- Hot path: TIME + ZREMRANGEBYSCORE + ZCARD + ZADD + PTTL.
-- Only admitted requests are recorded, so a client that keeps retrying is let
-- through again as soon as old requests leave the window. Members are unique
-- (passed in), so two requests in the same microsecond both count.
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local limit = tonumber(ARGV[1])
local window_ms = tonumber(ARGV[2])
local window_us = window_ms * 1000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window_us)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  -- The set must outlive its newest member by a window. Setting an expiry is a
  -- write Redis rewrites and propagates (~3 us here, PTTL ~1 us): extend it
  -- only when less than a window is left, and then to two windows, so about
  -- once per window instead of on every admitted hit. An idle key still goes
  -- away (at most two windows after its last admitted request).
  -- (Checking only on hits that removed members would save the PTTL, ~1 us,
  -- but sets written under this rule could then expire early: over-admission
  -- while old and new code share keys during an upgrade. Not worth it.)
  if redis.call('PTTL', KEYS[1]) < window_ms then
    redis.call('PEXPIRE', KEYS[1], 2 * window_ms)
  end
  return (limit - count - 1) * (window_ms + 1) + window_ms
end
-- Denied: the oldest admitted request frees the next slot, the newest the last.
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
local retry_ms = math.ceil((oldest[2] + window_us - now) / 1000)
local reset_ms = math.ceil((newest[2] + window_us - now) / 1000)
return {math.max(1, retry_ms), reset_ms}
