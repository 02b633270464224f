"""A call that loses its Redis connection waits out a restart, as the publish does."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import redis

from redisops.restarts import ride_out_restart
from redisops.tests.redis_proc import RedisProcess, free_port


@pytest.fixture
def own_redis(tmp_path: Path):
    server = RedisProcess(free_port(), tmp_path / "own", acl=False)
    server.start()
    yield server
    server.stop()


def test_a_call_during_a_restart_succeeds_once_redis_is_back(
    own_redis: RedisProcess,
) -> None:
    client = redis.Redis.from_url(own_redis.url(None), socket_connect_timeout=0.5)
    assert client.ping()
    own_redis.stop()
    threading.Timer(1.5, own_redis.start).start()
    started = time.monotonic()
    assert ride_out_restart(client.ping) is True
    assert 1.0 < time.monotonic() - started < 6


def test_a_redis_that_stays_down_fails_after_the_policy(
    own_redis: RedisProcess,
) -> None:
    client = redis.Redis.from_url(own_redis.url(None), socket_connect_timeout=0.5)
    own_redis.stop()
    started = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        ride_out_restart(client.ping)
    # CELERY_TASK_PUBLISH_RETRY_POLICY: six waits, 0 + 0.5 + 1 x 4 = 4.5 s.
    assert 4.0 < time.monotonic() - started < 10
