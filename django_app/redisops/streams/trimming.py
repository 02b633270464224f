"""Bounding a stream's memory: trim it, and forget the effects of entries gone."""

from __future__ import annotations

import redis

from .entry_ids import id_tuple
from .keys import effects_key


def trim(client: redis.Redis, stream: str, maxlen: int) -> dict[str, int]:
    """Trim a stream (approximate MAXLEN) and forget effects of entries gone.

    Used by the beat task; producers already trim on XADD. Trimming can drop
    a backlog: a pending entry trimmed away is counted by the consumer that
    finds it gone (acks.ack_trimmed).
    """
    trimmed = client.xtrim(stream, maxlen=maxlen, approximate=True)
    first = client.xrange(stream, count=1)
    pruned = 0
    if first:
        first_id = id_tuple(first[0][0])
        stale = [
            entry_id
            for entry_id, _ in client.hscan_iter(effects_key(stream), count=1000)
            if id_tuple(entry_id) < first_id
        ]
        for start in range(0, len(stale), 500):
            pruned += client.hdel(effects_key(stream), *stale[start : start + 500])
    return {"trimmed": int(trimmed), "effects_pruned": pruned}
