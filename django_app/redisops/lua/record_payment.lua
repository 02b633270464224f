-- Apply a payment to a client's ledger at most once, atomically with its
-- processed-once marker, and only while the ledger has room.
-- KEYS[1] the payment's marker, KEYS[2] the client's ledger (hash account -> balance)
-- ARGV[1] TTL (s) of marker and ledger, ARGV[2] marker value (task id),
-- ARGV[3] account, ARGV[4] amount, ARGV[5] most accounts a ledger may hold
-- Returns {status, balance}: 1 applied now; 0 applied before (the marker
-- exists: a redelivery changes nothing); -1 refused, the ledger is full and
-- the account is new (no marker is set, so the payment may be sent again).
-- Effect and marker are one atomic step: a crash never leaves one without the other.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, tonumber(redis.call('HGET', KEYS[2], ARGV[3]) or 0)}
end
if redis.call('HEXISTS', KEYS[2], ARGV[3]) == 0
    and redis.call('HLEN', KEYS[2]) >= tonumber(ARGV[5]) then
  return {-1, 0}
end
local ttl = tonumber(ARGV[1])
redis.call('SET', KEYS[1], ARGV[2], 'EX', ttl)
local balance = redis.call('HINCRBY', KEYS[2], ARGV[3], tonumber(ARGV[4]))
-- An untouched ledger expires: its size is bounded in time as well as in accounts.
redis.call('EXPIRE', KEYS[2], ttl)
return {1, balance}
