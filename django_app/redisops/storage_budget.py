"""The broker's memory is protected from application data.

Redis runs ``noeviction``: when it is full, every write fails, the broker's,
the results' and beat's heartbeat's included. So the API refuses writes of
application data (stream entries, published messages the listeners record,
ledger payments) once Redis's ``used_memory`` is above APP_DATA_MEMORY_BUDGET
percent of its ``maxmemory``: what is left stays for the broker, the results
and the heartbeat. Redis's own numbers (INFO memory, read as the app_budget
user, REDIS_BUDGET_URL: PING and INFO only, no key, no channel), so the app
and the redis_server role, which sets maxmemory, agree on the budget without
another setting.

The reading is cached per process for CACHE_SECONDS (one INFO per second per
process, not one per request) while Redis is well below the budget; within
NEAR_SHARE of it, every app-data write reads INFO again. So the budget is
overshot by at most what the web processes accept in one second after a
reading below NEAR_SHARE of the budget.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from functools import cache

import redis
from django.conf import settings

from .clients import redis_client
from .restarts import ride_out_restart

log = logging.getLogger(__name__)

CACHE_SECONDS = 1.0
# From this share of the budget on, readings are not reused.
NEAR_SHARE = 0.9


@dataclass(frozen=True)
class MemoryReading:
    used: int  # INFO memory used_memory (bytes)
    maxmemory: int  # 0: no limit configured
    at: float  # time.monotonic() of the reading


class StorageBudgetExceeded(Exception):
    """Redis holds more than the budget allows: no application data now."""

    def __init__(self, what: str, reading: MemoryReading, limit: int) -> None:
        self.what = what
        self.reading = reading
        self.limit = limit
        super().__init__(
            f"refused {what}: used_memory {reading.used} > {limit} "
            f"({settings.APP_DATA_MEMORY_BUDGET}% of maxmemory {reading.maxmemory})"
        )


class StorageBudgetUnavailable(Exception):
    """Redis's memory could not be read: refuse rather than guess."""


_readings: dict[str, MemoryReading] = {}
_lock = threading.Lock()
_warned_unlimited = False


@cache
def _monitor(url: str) -> redis.Redis:
    return redis_client(url, socket_timeout=2.0, socket_connect_timeout=2.0)


def _reusable(reading: MemoryReading, now: float) -> bool:
    """A reading less than CACHE_SECONDS old, of a Redis not near the budget."""
    if not 0 <= now - reading.at < CACHE_SECONDS:
        return False
    near = reading.maxmemory * settings.APP_DATA_MEMORY_BUDGET / 100 * NEAR_SHARE
    return reading.maxmemory == 0 or reading.used < near


def memory_reading(url: str, now: float | None = None) -> MemoryReading:
    """INFO memory of the server behind ``url``: a reading at most
    CACHE_SECONDS old while Redis is below NEAR_SHARE of the budget, a fresh
    one from there on."""
    now = time.monotonic() if now is None else now
    cached = _readings.get(url)
    if cached is not None and _reusable(cached, now):
        return cached
    info = _monitor(url).info("memory")
    reading = MemoryReading(int(info["used_memory"]), int(info["maxmemory"]), now)
    with _lock:
        _readings[url] = reading
    return reading


def forget_readings() -> None:
    """Drop the cached readings (tests; after a Redis reconfiguration)."""
    with _lock:
        _readings.clear()


def check_storage_budget(what: str, now: float | None = None) -> MemoryReading:
    """Return when ``what`` (e.g. "POST /api/stream for alice") may write
    application data; StorageBudgetExceeded when Redis is above the budget,
    StorageBudgetUnavailable when its memory cannot be read."""
    global _warned_unlimited
    url = settings.REDIS_URLS.get("REDIS_BUDGET_URL", "")
    if not url:
        raise StorageBudgetUnavailable("REDIS_BUDGET_URL is not set")
    try:
        reading = ride_out_restart(lambda: memory_reading(url, now))
    except redis.RedisError as exc:
        raise StorageBudgetUnavailable(
            f"INFO memory as REDIS_BUDGET_URL's user failed: {exc!r}"
        ) from exc
    if reading.maxmemory == 0:
        if not _warned_unlimited:
            _warned_unlimited = True
            log.warning(
                "Redis has no maxmemory: the app-data budget cannot be enforced "
                "(the redis_server role sets one)"
            )
        return reading
    limit = reading.maxmemory * settings.APP_DATA_MEMORY_BUDGET // 100
    if reading.used > limit:
        raise StorageBudgetExceeded(what, reading, limit)
    return reading
