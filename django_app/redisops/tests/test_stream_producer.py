"""Producing: XADD with an approximate MAXLEN (redisops/streams/producer.py)."""

from __future__ import annotations

import redis

from redisops.streams.producer import produce


def test_producer_caps_the_stream_approximately(r: redis.Redis, stream: str) -> None:
    for i in range(500):
        produce(r, stream, {"n": str(i)}, maxlen=100)
    assert 100 <= r.xlen(stream) < 500
