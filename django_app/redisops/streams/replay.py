"""Moving dead-lettered entries back into their stream once the cause is fixed."""

from __future__ import annotations

from dataclasses import dataclass, field

import redis

from ..luascripts import run_script
from .entry_ids import id_after
from .keys import dlq_name, progress_key


@dataclass
class ReplayResult:
    """What replay_dead_letters found and did."""

    seen: int = 0  # dead-letter entries looked at (all of them in a dry run)
    moved: list[tuple[str, str]] = field(default_factory=list)  # (dlq id, new id)
    reasons: dict[str, int] = field(default_factory=dict)  # exception -> count
    # Entries per value of the field named by ``count_field`` (when given).
    field_counts: dict[str, int] = field(default_factory=dict)
    left: int = 0  # entries in the dead-letter stream afterwards


def replay_dead_letters(
    client: redis.Redis,
    stream: str,
    *,
    maxlen: int,
    limit: int | None = None,
    batch: int = 100,
    dry_run: bool = False,
    count_field: str | None = None,
) -> ReplayResult:
    """Move up to ``limit`` entries (oldest first) from ``<stream>:dlq`` back
    into ``stream`` (lua/replay_dlq.lua: one atomic script per batch, so a
    crash or a concurrent run never duplicates or loses an entry).

    Only entries that were in the DLQ when the run started are looked at: an
    entry that fails again and comes back meanwhile waits for the next run.
    Entries are counted by failure reason (the exception's name) and, with
    ``count_field``, by that field's value. A dry run only counts.
    """
    if batch < 1 or (limit is not None and limit < 1):
        raise ValueError("batch and limit must be >= 1")
    dlq = dlq_name(stream)
    result = ReplayResult()
    newest = client.xrevrange(dlq, count=1)
    start = "-"
    while newest and (limit is None or result.seen < limit):
        count = batch if limit is None else min(batch, limit - result.seen)
        rows = client.xrange(dlq, start, newest[0][0], count=count)
        if not rows:
            break
        result.seen += len(rows)
        for _, fields in rows:
            reason = fields.get("dlq_reason", "?").split("(", 1)[0]
            result.reasons[reason] = result.reasons.get(reason, 0) + 1
            if count_field and count_field in fields:
                value = fields[count_field]
                result.field_counts[value] = result.field_counts.get(value, 0) + 1
        if not dry_run:
            flat = run_script(
                client,
                "replay_dlq",
                keys=[stream, dlq, progress_key(stream)],
                args=[maxlen, *(entry_id for entry_id, _ in rows)],
            )
            result.moved += list(zip(flat[::2], flat[1::2], strict=True))
        start = id_after(rows[-1][0])
    result.left = client.xlen(dlq)
    return result
