-- Count and SHA-1 of every key matching ARGV[1] with its type and value,
-- computed inside Redis (the admin user may run KEYS from a script; the data
-- set is small). The app keeps writing its own keys (heartbeat, results), so
-- drills compare the keys they seeded.
local keys = redis.call('KEYS', ARGV[1])
table.sort(keys)
local parts = {}
for _, k in ipairs(keys) do
  local t = redis.call('TYPE', k)['ok']
  local v
  if t == 'string' then v = {redis.call('GET', k)}
  elseif t == 'hash' then v = redis.call('HGETALL', k)
  elseif t == 'list' then v = redis.call('LRANGE', k, 0, -1)
  elseif t == 'set' then v = redis.call('SMEMBERS', k); table.sort(v)
  elseif t == 'zset' then v = redis.call('ZRANGE', k, 0, -1, 'WITHSCORES')
  elseif t == 'stream' then
    v = {}
    for _, e in ipairs(redis.call('XRANGE', k, '-', '+')) do
      v[#v + 1] = e[1] .. ':' .. table.concat(e[2], ',')
    end
  else v = {'?'} end
  parts[#parts + 1] = k .. '|' .. t .. '|' .. table.concat(v, ',')
end
return {#keys, redis.sha1hex(table.concat(parts, '\n'))}
