"""What the consumers have done, read from Redis: for the API, smoke and status."""

from __future__ import annotations

from typing import Any

import redis

from .keys import dlq_name, effects_key, progress_key


def progress(client: redis.Redis, stream: str, group: str) -> dict[str, Any]:
    """Length, dead-letter length, processed count, the progress counters
    (failures, dead_lettered, replayed, trimmed_unprocessed: only those that
    happened) and, once the group exists, its pending, consumers,
    last_delivered_id and lag."""
    info: dict[str, Any] = {
        "stream": stream,
        "group": group,
        "length": client.xlen(stream),
        "dead_letter_length": client.xlen(dlq_name(stream)),
        "processed": client.hlen(effects_key(stream)),
        "group_exists": False,
    }
    counters = client.hgetall(progress_key(stream))
    info.update({k: int(v) for k, v in counters.items()})
    try:
        groups = client.xinfo_groups(stream)
    except redis.ResponseError:  # no such stream yet
        groups = []
    for g in groups:
        if g.get("name") == group:
            info.update(
                group_exists=True,
                pending=g.get("pending"),
                consumers=g.get("consumers"),
                last_delivered_id=g.get("last-delivered-id"),
                lag=g.get("lag"),
            )
    return info
