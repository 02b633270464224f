-- Fixed window counter. One round trip, atomic; Redis's clock (the key's TTL).
-- KEYS[1] counter key
-- ARGV[1] limit, ARGV[2] window (ms)
-- Returns, admitted: one integer, remaining * (window + 1) + reset_after_ms
-- (ratelimit.py splits it; one integer costs Redis and the client less than
-- an array); denied: {retry_after_ms, reset_after_ms}.
-- Hot path: INCR + PTTL (INCR + PEXPIRE when the window starts). The expiry is
-- set only when the window starts (INCR returned 1), never pushed forward by
-- later hits, so the key resets under steady traffic. Denied hits are counted
-- too (the counter just passes the limit); that changes nothing: the window
-- still ends when the expiry set at its start runs out.
local count = redis.call('INCR', KEYS[1])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local ttl
if count == 1 then
  redis.call('PEXPIRE', KEYS[1], window)
  ttl = window
else
  ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then
    -- A counter without expiry (written by something else) would block for
    -- ever: restart its window.
    redis.call('SET', KEYS[1], 1, 'PX', window)
    count = 1
    ttl = window
  end
end
-- reset_after_ms <= window keeps the integer reply decodable (a TTL set by an
-- older, longer window of the same name is reported as one window).
ttl = math.min(ttl, window)
if count <= limit then
  return (limit - count) * (window + 1) + ttl
end
return {ttl, ttl}
