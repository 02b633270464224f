-- Move dead-lettered entries back into their stream, one atomic step per
-- batch: each named entry still in the dead-letter stream is re-added to the
-- stream with its original fields (the dlq_* bookkeeping fields dropped) and
-- deleted from the dead-letter stream. An id no longer there (a concurrent
-- run moved it) is skipped: an entry is never added twice, never lost.
-- KEYS[1] stream, KEYS[2] dead-letter stream, KEYS[3] progress hash
-- ARGV[1] stream MAXLEN (approximate), ARGV[2..] dead-letter entry ids
-- Returns a flat list: dead-letter id, new stream id, ...
local moved = {}
for i = 2, #ARGV do
  local rows = redis.call('XRANGE', KEYS[2], ARGV[i], ARGV[i])
  if #rows == 1 then
    local fields = rows[1][2]
    local keep = {}
    for j = 1, #fields, 2 do
      if string.sub(fields[j], 1, 4) ~= 'dlq_' then
        keep[#keep + 1] = fields[j]
        keep[#keep + 1] = fields[j + 1]
      end
    end
    -- XADD needs a field; an entry of only dlq_* fields keeps a marker.
    if #keep == 0 then
      keep = {'replayed', ARGV[i]}
    end
    local new_id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(keep))
    redis.call('XDEL', KEYS[2], ARGV[i])
    moved[#moved + 1] = ARGV[i]
    moved[#moved + 1] = new_id
  end
end
if #moved > 0 then
  redis.call('HINCRBY', KEYS[3], 'replayed', #moved / 2)
end
return moved
