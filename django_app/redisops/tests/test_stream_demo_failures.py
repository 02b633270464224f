"""The demo failure rules (redisops/streams/demo_failures.py)."""

from __future__ import annotations

import redis

from redisops.streams.demo_failures import demo_handler
from redisops.streams.producer import produce
from redisops.tests.stream_helpers import consumer, effects


def test_non_ascii_digits_in_work_ms_do_not_crash_the_handler(
    r: redis.Redis, stream: str
) -> None:
    entry = produce(r, stream, {"work_ms": "\u00b2"}, 1000)  # "²".isdigit()
    c = consumer(r, stream, "A", handler=demo_handler)
    c.ensure_group()
    c.read_new()
    assert effects(r, stream) == {entry: 1}
    assert c.stats.failed == 0
