"""The three ways an entry leaves a group's pending list, each one atomic:

- committed: its effect recorded once, under a processed-once marker, and
  XACKed (lua/commit_entries.lua, one script call for a batch);
- dead-lettered: copied to ``<stream>:dlq`` and XACKed (MULTI);
- trimmed: gone from the stream before anyone processed it, so XACKed
  unprocessed and counted (MULTI), loudly.
"""

from __future__ import annotations

import logging

import redis

from ..luascripts import run_script
from .keys import dlq_name, effects_key, marker_key, progress_key

log = logging.getLogger(__name__)

# A processed-once marker is needed while its entry can still be delivered,
# i.e. while the entry is in the stream: trim_streams deletes it with the
# entry (streams.trimming.trim), so MAXLEN bounds the markers. This TTL is
# only the backstop for when trimming does not run (beat down).
DONE_MARKER_TTL = 24 * 3600
DLQ_REASON_CHARS = 500
# Fields a dead-letter record adds (replay drops them again); the API
# refuses them in new entries (redisops.views).
DLQ_FIELD_PREFIX = "dlq_"


def commit_entries(
    client: redis.Redis, stream: str, group: str, consumer: str, entry_ids: list[str]
) -> list[bool]:
    """Record each entry's effect once and XACK them all: one atomic script,
    one round trip. Returns, per entry, whether its effect was recorded now
    (False: an earlier delivery had recorded it)."""
    flags = run_script(
        client,
        "commit_entries",
        keys=[
            stream,
            effects_key(stream),
            *[marker_key(stream, i) for i in entry_ids],
        ],
        args=[DONE_MARKER_TTL, consumer, group, *entry_ids],
    )
    return [bool(f) for f in flags]


def dead_letter(
    client: redis.Redis,
    stream: str,
    group: str,
    entry_id: str,
    record: dict[str, str],
    dlq_maxlen: int,
) -> None:
    """XADD ``record`` to <stream>:dlq, XACK the entry and count it, in one
    transaction: the entry is either pending or dead-lettered, never both."""
    with client.pipeline(transaction=True) as pipe:
        pipe.xadd(dlq_name(stream), record, maxlen=dlq_maxlen, approximate=True)
        pipe.xack(stream, group, entry_id)
        pipe.hincrby(progress_key(stream), "dead_lettered", 1)
        pipe.execute()


def dead_letter_record(
    fields: dict[str, str], entry_id: str, deliveries: int, reason: str, consumer: str
) -> dict[str, str]:
    """The entry's own fields plus ``dlq_*`` fields saying where it came from
    and why (replay drops the ``dlq_*`` fields again)."""
    return {
        **fields,
        "dlq_source_id": entry_id,
        "dlq_deliveries": str(deliveries),
        "dlq_reason": reason[:DLQ_REASON_CHARS],
        "dlq_consumer": consumer,
    }


def ack_trimmed(
    client: redis.Redis, stream: str, group: str, entry_ids: list[str]
) -> None:
    """Entries trimmed (MAXLEN) or deleted while still pending: their data is
    gone, so they are acked unprocessed; loudly, and counted as
    ``trimmed_unprocessed``."""
    with client.pipeline(transaction=True) as pipe:
        pipe.xack(stream, group, *entry_ids)
        pipe.hincrby(progress_key(stream), "trimmed_unprocessed", len(entry_ids))
        pipe.execute()
    log.warning(
        "%d entries of %s were trimmed while pending and are lost "
        "unprocessed (stream MAXLEN too small for the backlog?): %s",
        len(entry_ids),
        stream,
        ", ".join(entry_ids[:20]),
    )
