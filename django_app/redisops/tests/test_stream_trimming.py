"""Trimming a stream and forgetting old effects (redisops/streams/trimming.py)."""

from __future__ import annotations

import redis

from redisops.streams.producer import produce
from redisops.streams.trimming import trim
from redisops.tests.stream_helpers import consumer, effects


def test_trim_forgets_effects_of_trimmed_entries(r: redis.Redis, stream: str) -> None:
    c = consumer(r, stream, "A", batch=1000)
    for i in range(300):
        produce(r, stream, {"n": str(i)}, 10_000)
    c.ensure_group()
    c.read_new()
    assert len(effects(r, stream)) == 300
    result = trim(r, stream, maxlen=10)
    assert result["effects_pruned"] > 0
    assert len(effects(r, stream)) == r.xlen(stream)
