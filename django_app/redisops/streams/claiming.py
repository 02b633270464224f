"""Taking over entries left pending too long by another consumer (dead or slow).

Two strategies, same contract: each call claims one page of at most ``count``
entries idle longer than ``min_idle_ms``, and a cursor walks the whole pending
list and wraps around, so fresh entries at its head never hide stale ones
behind them.

- ``AutoClaimer``: XAUTOCLAIM (Redis >= 6.2), with its own cursor.
- ``PendingClaimer``: XPENDING + XCLAIM (Redis 6.0: no XAUTOCLAIM, no IDLE
  filter, no exclusive ranges), with a cursor kept here.

Both report entries deleted (trimmed) while pending separately, as ``gone``:
they cannot be processed and are acked unprocessed by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import redis

from ..clients import server_version
from .entry_ids import id_after
from .keys import marker_key

Entry = tuple[str, dict[str, str] | None]  # fields None: deleted while pending


@dataclass
class ClaimPage:
    entries: list[Entry] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)  # trimmed while pending


@dataclass
class AutoClaimer:
    """XAUTOCLAIM (Redis >= 6.2)."""

    client: redis.Redis
    stream: str
    group: str
    consumer: str
    min_idle_ms: int
    count: int
    cursor: str = "0-0"
    name = "XAUTOCLAIM"

    def claim_page(self) -> ClaimPage:
        reply = self.client.xautoclaim(
            self.stream,
            self.group,
            self.consumer,
            min_idle_time=self.min_idle_ms,
            start_id=self.cursor,
            count=self.count,
        )
        self.cursor = reply[0] or "0-0"
        # Redis >= 7.0 drops entries deleted (trimmed) while pending from
        # the PEL and names them in a third element.
        gone = list(reply[2]) if len(reply) > 2 else []
        return ClaimPage(entries=reply[1], gone=gone)


@dataclass
class PendingClaimer:
    """XPENDING + XCLAIM (Redis 6.0)."""

    client: redis.Redis
    stream: str
    group: str
    consumer: str
    min_idle_ms: int
    count: int
    cursor: str = "-"
    name = "XPENDING+XCLAIM"

    def claim_page(self) -> ClaimPage:
        """XPENDING from the cursor, XCLAIM the idle ones, move the cursor past
        the page; back to the start once the end of the list is reached."""
        pending = self.client.xpending_range(
            self.stream, self.group, min=self.cursor, max="+", count=self.count
        )
        if len(pending) < self.count:
            self.cursor = "-"
        else:
            self.cursor = id_after(pending[-1]["message_id"])
        ids = [
            p["message_id"]
            for p in pending
            if p["time_since_delivered"] >= self.min_idle_ms
        ]
        if not ids:
            return ClaimPage()
        entries = self.client.xclaim(
            self.stream, self.group, self.consumer, self.min_idle_ms, ids
        )
        missing = sorted(set(ids) - {entry_id for entry_id, _ in entries})
        return ClaimPage(entries=entries, gone=self._trimmed(missing))

    def _trimmed(self, entry_ids: list[str]) -> list[str]:
        """XCLAIM (Redis >= 7.0) silently drops entries deleted while pending.
        Those gone from the stream and never processed were trimmed away;
        the others were just taken or acked by someone else meanwhile."""
        if not entry_ids:
            return []
        with self.client.pipeline(transaction=False) as pipe:
            for entry_id in entry_ids:
                pipe.xrange(self.stream, entry_id, entry_id)
                pipe.exists(marker_key(self.stream, entry_id))
            replies = pipe.execute()
        return [
            entry_id
            for entry_id, in_stream, processed in zip(
                entry_ids, replies[::2], replies[1::2], strict=True
            )
            if not in_stream and not processed
        ]


Claimer = AutoClaimer | PendingClaimer


def claimer_for(
    client: redis.Redis,
    stream: str,
    group: str,
    consumer: str,
    *,
    min_idle_ms: int,
    count: int,
    autoclaim: bool | None = None,
) -> Claimer:
    """XAUTOCLAIM when ``autoclaim`` says so, or, when None, when the server
    has it (HELLO: Redis >= 6.2); XPENDING + XCLAIM otherwise."""
    if autoclaim is None:
        autoclaim = server_version(client) >= (6, 2, 0)
    kind = AutoClaimer if autoclaim else PendingClaimer
    return kind(client, stream, group, consumer, min_idle_ms, count)
