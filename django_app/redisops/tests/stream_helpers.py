"""Helpers shared by the stream tests (tests/test_stream_*.py, test_replay_dlq.py)."""

from __future__ import annotations

import threading
from typing import Any

import redis

from redisops.streams import StreamConsumer, effects_key


def consumer(r: redis.Redis, stream: str, name: str, **kw: Any) -> StreamConsumer:
    """A consumer of group "workers" with short timings."""
    kw.setdefault("claim_idle_ms", 200)
    kw.setdefault("block_ms", 100)
    kw.setdefault("max_deliveries", 3)
    return StreamConsumer(r, stream, "workers", name, **kw)


def run_in_thread(c: StreamConsumer) -> threading.Thread:
    t = threading.Thread(target=c.run, daemon=True)
    t.start()
    return t


def pending_consumers(r: redis.Redis, stream: str) -> list[str]:
    try:
        return [
            p["consumer"] for p in r.xpending_range(stream, "workers", "-", "+", 10)
        ]
    except redis.ResponseError:  # NOGROUP: the consumer has not started yet
        return []


def effects(r: redis.Redis, stream: str) -> dict[str, int]:
    return {k: int(v) for k, v in r.hgetall(effects_key(stream)).items()}
