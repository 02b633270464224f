-- Finish a batch of stream entries in one atomic step (one round trip): for
-- each entry record its effect once under a processed-once marker, then XACK
-- them all.
-- KEYS[1] stream, KEYS[2] effects hash, KEYS[3..n+2] processed-once markers
-- ARGV[1] marker TTL (s), ARGV[2] consumer name, ARGV[3] group,
-- ARGV[4..n+3] entry ids (in the order of the markers)
-- Returns one flag per entry: 1 when its effect was recorded now, 0 when an
-- earlier delivery of the same entry (e.g. to a consumer presumed dead) had
-- already recorded it.
local ttl = tonumber(ARGV[1])
local applied = {}
for i = 3, #KEYS do
  local id = ARGV[i + 1]
  if redis.call('SET', KEYS[i], ARGV[2], 'NX', 'EX', ttl) then
    redis.call('HINCRBY', KEYS[2], id, 1)
    applied[i - 2] = 1
  else
    applied[i - 2] = 0
  end
end
-- XACK takes many ids; unpack() in chunks stays below Lua's C stack limit.
for first = 4, #ARGV, 500 do
  redis.call('XACK', KEYS[1], ARGV[3], unpack(ARGV, first, math.min(first + 499, #ARGV)))
end
return applied
