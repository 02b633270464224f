"""Rate limiters in Redis: fixed window, sliding window log, token bucket (GCRA).

Each decision is one atomic Lua script (lua/*.lua, loaded with
``register_script`` and run by EVALSHA), one round trip, on Redis's clock
(``TIME``), never the client's: hosts whose clocks disagree still share one
limit. Limits hold across the whole fleet, unlike Celery's per-worker
``rate_limit``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import ClassVar

import redis
from redis.exceptions import NoScriptError

from . import redis_acl

KEY_PREFIX = f"{redis_acl.APP_PREFIX}rl:"


@cache
def lua_source(name: str) -> str:
    """The text of lua/<name>.lua (shipped inside the package)."""
    return resources.files(__package__).joinpath("lua", f"{name}.lua").read_text()


@dataclass(frozen=True)
class Decision:
    """One limiter answer. Times are seconds (float)."""

    allowed: bool
    limit: int
    remaining: int
    reset_after: float  # until the limit is fully available again
    retry_after: float  # until the next request may pass (0 when allowed)

    def headers(self) -> dict[str, str]:
        """RateLimit-* headers (IETF draft) and Retry-After when denied."""
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(max(0, self.remaining)),
            "RateLimit-Reset": str(_ceil_seconds(self.reset_after)),
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, _ceil_seconds(self.retry_after)))
        return headers


def _ceil_seconds(value: float) -> int:
    return int(-(-value // 1))


class Limiter:
    """Base class: ``limit`` requests per ``period`` seconds per key."""

    script_name: ClassVar[str] = ""
    algorithm: ClassVar[str] = ""

    def __init__(self, client: redis.Redis, limit: int, period: float) -> None:
        if limit < 1 or period <= 0:
            raise ValueError("limit must be >= 1 and period > 0")
        self.client = client
        self.limit = int(limit)
        self.period_ms = max(1, int(period * 1000))
        self._script = client.register_script(lua_source(self.script_name))
        self._fixed_args = [str(self.limit), str(self.period_ms)]

    def key(self, name: str) -> str:
        return f"{KEY_PREFIX}{self.algorithm}:{name}"

    def _args(self) -> list[object]:
        return self._fixed_args

    def _evalsha(self, key: str) -> list[int]:
        """EVALSHA: one round trip; loads the script once if the server lost it
        (restart, SCRIPT FLUSH). Leaner than redis-py's Script wrapper."""
        try:
            return self.client.execute_command(
                "EVALSHA", self._script.sha, 1, key, *self._args()
            )
        except NoScriptError:
            self._script.sha = self.client.script_load(self._script.script)
            return self.client.execute_command(
                "EVALSHA", self._script.sha, 1, key, *self._args()
            )

    def hit(self, name: str) -> Decision:
        """Count one request for ``name`` and decide. Raises redis.RedisError."""
        allowed, remaining, reset_ms, retry_ms = self._evalsha(self.key(name))
        return Decision(
            allowed=bool(int(allowed)),
            limit=self.limit,
            remaining=int(remaining),
            reset_after=int(reset_ms) / 1000,
            retry_after=int(retry_ms) / 1000,
        )


class FixedWindow(Limiter):
    """At most ``limit`` per window that starts at the first admitted request."""

    script_name = "fixed_window"
    algorithm = "fixed"


class SlidingWindow(Limiter):
    """At most ``limit`` admitted requests in any trailing ``period``."""

    script_name = "sliding_window"
    algorithm = "sliding"

    def _args(self) -> list[object]:
        return [*self._fixed_args, uuid.uuid4().hex]


class TokenBucket(Limiter):
    """GCRA: a bucket of ``limit`` tokens refilled evenly over ``period``."""

    script_name = "gcra"
    algorithm = "gcra"


ALGORITHMS: dict[str, type[Limiter]] = {
    "fixed": FixedWindow,
    "sliding": SlidingWindow,
    "gcra": TokenBucket,
}


def make_limiter(
    algorithm: str, client: redis.Redis, limit: int, period: float
) -> Limiter:
    try:
        cls = ALGORITHMS[algorithm]
    except KeyError:
        raise ValueError(
            f"unknown algorithm {algorithm!r}; choose from {sorted(ALGORITHMS)}"
        ) from None
    return cls(client, limit, period)
