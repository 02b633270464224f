"""Redis refusing writes for a while, and how a long-running process waits it out.

Two refusals are transient by nature:

- ``NOREPLICAS``: the master has fewer replicas in sync than its
  ``min-replicas-to-write`` (the redis_server role sets it): a replica lags,
  restarts or is gone; writes come back when one catches up. redis-py raises
  a plain ``ResponseError`` for it.
- ``READONLY``: the server we are connected to is a replica now (a failover
  demoted it) and our client has not reconnected yet (``ReadOnlyError``; a
  ``sentinel://`` client turns it into a reconnect by itself).

Reads still work during either. A process that would otherwise exit (the
stream consumer, the Pub/Sub listener, a Celery worker) keeps its place,
waits with a bounded, jittered backoff (``WriteRefusals``), logs once per
episode at WARNING, and resumes on its own when a write is accepted.
"""

from __future__ import annotations

import logging
import random
import re
import time

from redis.exceptions import ReadOnlyError, ResponseError

log = logging.getLogger(__name__)

# The refusal at the start of the text (a command's own error, Redis >= 7's
# script error) or after ": -" (a script's error on Redis 6); redis-py's
# pipeline prefix ("Command # 1 (...) of pipeline caused error: ") is cut
# first, so a command argument never counts.
_REFUSAL_RE = re.compile(r"(?:^|: -?)(NOREPLICAS|READONLY) ")
_PIPELINE_PREFIX = " of pipeline caused error: "

FIRST_DELAY_S = 0.2
MAX_DELAY_S = 5.0

WHY = {
    "NOREPLICAS": "too few replicas in sync (min-replicas-to-write)",
    "READONLY": "the server is a replica now (failover)",
}


def refusal_kind(exc: BaseException) -> str | None:
    """``"NOREPLICAS"`` or ``"READONLY"`` when ``exc`` is Redis refusing a
    write for one of those transient reasons; None for anything else."""
    if isinstance(exc, ReadOnlyError):
        return "READONLY"
    if not isinstance(exc, ResponseError):
        return None
    text = str(exc).rsplit(_PIPELINE_PREFIX, 1)[-1]
    match = _REFUSAL_RE.search(text)
    return match.group(1) if match else None


def is_write_refused(exc: BaseException) -> bool:
    return refusal_kind(exc) is not None


def backoff_delay(attempt: int, first: float, cap: float) -> float:
    """Attempt n (0-based) waits between half and all of min(cap, first * 2**n):
    bounded by ``cap``, and processes that were refused together do not all
    retry at the same instant."""
    ceiling = min(cap, first * 2**attempt)
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - not crypto


class WriteRefusals:
    """One process part's episodes of refused writes.

    ``refused(exc)`` returns how long to wait before trying again and logs a
    WARNING only on an episode's first refusal (later ones at DEBUG);
    ``accepted()`` ends the episode with one INFO line. Not thread-safe: one
    per loop.
    """

    def __init__(
        self, who: str, *, first: float = FIRST_DELAY_S, cap: float = MAX_DELAY_S
    ) -> None:
        self.who = who
        self.first = first
        self.cap = cap
        self.since: float | None = None
        self.attempts = 0
        self.episodes = 0

    @property
    def in_episode(self) -> bool:
        return self.since is not None

    def refused(self, exc: BaseException, doing: str = "") -> float:
        delay = backoff_delay(self.attempts, self.first, self.cap)
        kind = refusal_kind(exc) or type(exc).__name__
        if self.since is None:
            self.since = time.monotonic()
            self.episodes += 1
            log.warning(
                "%s: Redis refuses writes (%s: %s)%s; waiting in process, "
                "retrying every <= %.0f s, nothing is lost meanwhile",
                self.who,
                kind,
                WHY.get(kind, exc),
                f" while {doing}" if doing else "",
                self.cap,
            )
        else:
            log.debug(
                "%s: writes still refused (%s); next try in %.2f s",
                self.who,
                kind,
                delay,
            )
        self.attempts += 1
        return delay

    def accepted(self) -> None:
        if self.since is None:
            return
        log.info(
            "%s: Redis accepts writes again after %.1f s (%d refused attempts)",
            self.who,
            time.monotonic() - self.since,
            self.attempts,
        )
        self.since = None
        self.attempts = 0
