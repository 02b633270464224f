-- Fixed window counter. One round trip, atomic; Redis's clock (the key's TTL).
-- KEYS[1] counter key
-- ARGV[1] limit, ARGV[2] window (ms)
-- Returns {allowed (0/1), remaining, reset_after_ms, retry_after_ms}
-- Hot path: INCR + PTTL (INCR + PEXPIRE when the window starts). The expiry is
-- set only when the window starts (INCR returned 1), never pushed forward by
-- later hits, so the key resets under steady traffic. Denied hits are counted
-- too (the counter just passes the limit); that changes nothing: the window
-- still ends when the expiry set at its start runs out.
local count = redis.call('INCR', KEYS[1])
local limit = tonumber(ARGV[1])
local ttl
if count == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  ttl = tonumber(ARGV[2])
else
  ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then
    -- A counter without expiry (written by something else) would block for
    -- ever: restart its window.
    redis.call('SET', KEYS[1], 1, 'PX', ARGV[2])
    count = 1
    ttl = tonumber(ARGV[2])
  end
end
if count <= limit then
  return {1, limit - count, ttl, 0}
end
return {0, 0, ttl, ttl}
