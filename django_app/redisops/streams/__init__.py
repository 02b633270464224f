"""Redis Streams: a producer and a consumer group that loses nothing.

One module per job; this package re-exports what callers use.

- keys.py, entry_ids.py: the keys named after a stream; entry ids as numbers
- producer.py: XADD with an approximate MAXLEN
- consumer.py: StreamConsumer (read, handle, commit; stop on SIGTERM), whose
  default handler ``apply_entry`` only applies the entry
- claiming.py: taking over stale pending entries (XAUTOCLAIM on Redis >= 6.2,
  XPENDING + XCLAIM on 6.0), paging with a cursor
- acks.py: the three atomic ways out of the pending list (commit once,
  dead-letter, trimmed)
- progress.py: what the consumers have done (API, smoke, status)
- replay.py: dead-letter stream back into the stream (``manage.py replay_dlq``)
- trimming.py: MAXLEN trim and forgetting old effects (beat task)
- demo_failures.py: failure rules for demos and drills (``work_ms``,
  ``poison``, ``depends_on`` + ``app:outage:<name>``), only with
  APP_STREAM_DEMO_FAILURES=true
"""

from __future__ import annotations

from .consumer import ConsumerStats, Handler, StreamConsumer, apply_entry
from .keys import dlq_name, effects_key, marker_key, progress_key
from .producer import produce
from .progress import progress
from .replay import ReplayResult, replay_dead_letters
from .trimming import trim

__all__ = [
    "ConsumerStats",
    "Handler",
    "ReplayResult",
    "StreamConsumer",
    "apply_entry",
    "dlq_name",
    "effects_key",
    "marker_key",
    "produce",
    "progress",
    "progress_key",
    "replay_dead_letters",
    "trim",
]
