"""What the consumers have done (redisops/streams/progress.py)."""

from __future__ import annotations

import redis

from redisops.streams.producer import produce
from redisops.streams.progress import progress
from redisops.tests.stream_helpers import consumer


def test_progress_reports_the_group(r: redis.Redis, stream: str) -> None:
    produce(r, stream, {"n": "1"}, 1000)
    c = consumer(r, stream, "A")
    c.ensure_group()
    c.read_new()
    info = progress(r, stream, "workers")
    assert info["group_exists"]
    assert info["processed"] == 1
    assert info["pending"] == 0
    assert info["length"] == 1
