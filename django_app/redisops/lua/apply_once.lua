-- Apply an effect at most once per idempotency key, atomically with its marker.
-- KEYS[1] marker key, KEYS[2] hash that holds the effect
-- ARGV[1] marker TTL (s), ARGV[2] marker value, ARGV[3] hash field, ARGV[4] increment
-- Returns 1 when applied now, 0 when the marker says it was applied before.
-- Effect and marker are one atomic step: a crash can never leave one without
-- the other, so a redelivered message or task changes nothing the second time.
if redis.call('SET', KEYS[1], ARGV[2], 'NX', 'EX', tonumber(ARGV[1])) then
  redis.call('HINCRBY', KEYS[2], ARGV[3], tonumber(ARGV[4]))
  return 1
end
return 0
