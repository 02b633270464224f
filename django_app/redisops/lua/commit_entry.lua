-- Finish a stream entry: record its effect once, and XACK, in one atomic step.
-- KEYS[1] processed-once marker, KEYS[2] effects hash, KEYS[3] stream
-- ARGV[1] marker TTL (s), ARGV[2] consumer name, ARGV[3] entry id, ARGV[4] group
-- Returns 1 when the effect was recorded now, 0 when an earlier delivery of
-- the same entry (e.g. to a consumer presumed dead) had already recorded it.
local applied = 0
if redis.call('SET', KEYS[1], ARGV[2], 'NX', 'EX', tonumber(ARGV[1])) then
  redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
  applied = 1
end
redis.call('XACK', KEYS[3], ARGV[4], ARGV[3])
return applied
