"""Adding entries to a stream."""

from __future__ import annotations

import redis


def produce(
    client: redis.Redis, stream: str, fields: dict[str, str], maxlen: int
) -> str:
    """XADD with an approximate MAXLEN (``~``): bounded memory, cheap trimming."""
    return client.xadd(stream, fields, maxlen=maxlen, approximate=True)
