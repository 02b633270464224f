"""Rate limiters in Redis: fixed window, sliding window log, token bucket (GCRA).

Each decision is one atomic Lua script (lua/*.lua, run by EVALSHA and loaded
only when the server answers NOSCRIPT), one round trip, on Redis's clock
(``TIME``), never the client's: hosts whose clocks disagree still share one
limit. Limits hold across the whole fleet, unlike Celery's per-worker
``rate_limit``.
"""

from __future__ import annotations

import itertools
import os
from typing import ClassVar, NamedTuple

import redis

from . import redis_acl
from .luascripts import lua_source, run_script

__all__ = ["ALGORITHMS", "Decision", "Limiter", "lua_source", "make_limiter"]

KEY_PREFIX = f"{redis_acl.APP_PREFIX}rl:"


class Decision(NamedTuple):
    """One limiter answer. Times are seconds (float). A NamedTuple: immutable
    and cheap to build (one per request)."""

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


# Unique sorted-set members for the sliding window: a random per-process prefix
# and a counter. The prefix is drawn again in a forked child, so two processes
# never produce the same member (uuid4 per call costs ~2 us, this ~0.2 us).
_member_prefix = ""
_member_counter = itertools.count()


def _new_member_prefix() -> None:
    global _member_prefix, _member_counter
    _member_prefix = os.urandom(9).hex() + ":"
    _member_counter = itertools.count()


_new_member_prefix()
os.register_at_fork(after_in_child=_new_member_prefix)


def unique_member() -> str:
    return f"{_member_prefix}{next(_member_counter)}"


# The scripts' admitted reply is one integer, remaining * (period_ms + 1) +
# reset_after_ms; Lua numbers are doubles, exact below 2**53.
_MAX_REPLY = 2**53


def limit_problem(limit: int, period_ms: int) -> str | None:
    """Why ``limit`` per ``period_ms`` cannot be decided, or None. Settings
    call it too, so such a limit fails at start, not on the first request."""
    if limit * (period_ms + 1) >= _MAX_REPLY:
        return (
            f"limit x period too large ({limit} per {period_ms} ms): "
            f"limit x (period in ms + 1) must stay below 2**53"
        )
    return None


class Limiter:
    """Base class: ``limit`` requests per ``period`` seconds per key.

    ``hit()`` is one EVALSHA (one round trip, luascripts.run_script): the
    fixed arguments are computed once here. The script is loaded only when the
    server answers NOSCRIPT (restart, SCRIPT FLUSH). An admitted request's
    reply is one integer (remaining and reset packed, see lua/*.lua), a denied
    one's {retry_after_ms, reset_after_ms}.
    """

    script_name: ClassVar[str] = ""
    algorithm: ClassVar[str] = ""

    def __init__(self, client: redis.Redis, limit: int, period: float) -> None:
        if limit < 1 or period <= 0:
            raise ValueError("limit must be >= 1 and period > 0")
        self.client = client
        self.limit = int(limit)
        self.period_ms = max(1, int(period * 1000))
        self._radix = self.period_ms + 1
        problem = limit_problem(self.limit, self.period_ms)
        if problem:
            raise ValueError(problem)
        self._fixed_args = (str(self.limit), str(self.period_ms))
        self._prefix = f"{KEY_PREFIX}{self.algorithm}:"

    def key(self, name: str) -> str:
        return self._prefix + name

    def _args(self) -> tuple[str, ...]:
        return self._fixed_args

    def hit(self, name: str) -> Decision:
        """Count one request for ``name`` and decide. Raises redis.RedisError."""
        reply = run_script(
            self.client, self.script_name, (self._prefix + name,), self._args()
        )
        if isinstance(reply, int):  # admitted
            remaining, reset_ms = divmod(reply, self._radix)
            return Decision(True, self.limit, remaining, reset_ms / 1000, 0.0)
        retry_ms, reset_ms = reply
        return Decision(False, self.limit, 0, reset_ms / 1000, retry_ms / 1000)


class FixedWindow(Limiter):
    """At most ``limit`` per window that starts at the first admitted request."""

    script_name = "fixed_window"
    algorithm = "fixed"


class SlidingWindow(Limiter):
    """At most ``limit`` admitted requests in any trailing ``period``."""

    script_name = "sliding_window"
    algorithm = "sliding"

    def _args(self) -> tuple[str, ...]:
        return (*self._fixed_args, unique_member())


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
