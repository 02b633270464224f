"""Bounding a stream's memory: trim it, and forget the effects and
processed-once markers of entries gone."""

from __future__ import annotations

import redis

from .entry_ids import id_tuple
from .keys import effects_key, marker_key


def trim(client: redis.Redis, stream: str, maxlen: int) -> dict[str, int]:
    """Trim a stream (approximate MAXLEN) and forget the effects and the
    processed-once markers of entries gone: a marker only guards an entry
    that can still be delivered, so markers live as long as their entries
    (MAXLEN), not a fixed time.

    Used by the beat task; producers already trim on XADD. Trimming can drop
    a backlog: a pending entry trimmed away is counted by the consumer that
    finds it gone (acks.ack_trimmed).
    """
    trimmed = client.xtrim(stream, maxlen=maxlen, approximate=True)
    first = client.xrange(stream, count=1)
    pruned = markers = 0
    if first:
        first_id = id_tuple(first[0][0])
        stale = [
            entry_id
            for entry_id, _ in client.hscan_iter(effects_key(stream), count=1000)
            if id_tuple(entry_id) < first_id
        ]
        for start in range(0, len(stale), 500):
            chunk = stale[start : start + 500]
            with client.pipeline(transaction=False) as pipe:
                pipe.hdel(effects_key(stream), *chunk)
                pipe.delete(*(marker_key(stream, entry_id) for entry_id in chunk))
                hdel, deleted = pipe.execute()
            pruned += hdel
            markers += deleted
    return {
        "trimmed": int(trimmed),
        "effects_pruned": pruned,
        "markers_deleted": markers,
    }
