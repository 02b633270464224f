"""Redis Streams: a producer and a consumer-group worker that loses nothing.

- The group is created from id 0 with MKSTREAM, so entries written before the
  first consumer started are processed too; only BUSYGROUP is ignored.
- New entries are read with ``>``; this consumer's own pending entries (from
  before a restart) are read first with ``0``.
- Entries are acked after processing. Entries left pending by a dead consumer
  are claimed after ``claim_idle_ms`` with XAUTOCLAIM (Redis >= 6.2) or
  XPENDING + XCLAIM (Redis 6.0); both page through the whole pending list
  with a cursor, so fresh entries at its head never hide stale ones behind.
- An entry trimmed away (MAXLEN) while still pending cannot be processed any
  more: it is acked, logged at WARNING and counted as ``trimmed_unprocessed``
  in the progress hash. MAXLEN bounds memory, and can drop a backlog.
- An entry that failed ``max_deliveries`` times goes to ``<stream>:dlq``
  (XADD + XACK in one MULTI). ``replay_dead_letters`` (``manage.py
  replay_dlq``) moves them back once the cause is fixed: one Lua script per
  batch re-adds each entry's original fields to the stream and deletes it
  from the DLQ, so a crash or a concurrent run never duplicates or loses one.
- Demo failures: an entry with a ``poison`` field always fails; an entry with
  ``depends_on=<name>`` fails while the flag key ``app:outage:<name>`` exists
  (a simulated downstream outage the on-call clears), so it succeeds on replay.
- Processing is idempotent: after the handler succeeded, one Lua script
  (lua/commit_entries.lua) records the effect under a processed-once marker and
  XACKs, atomically; a redelivered entry is acked without a second effect.
- Commits are batched: the entries handled from one read are committed by one
  script call (one round trip for the batch instead of one per entry). An
  entry handled but not yet committed when the process dies is simply
  delivered again (its handler runs again, its effect still happens once), so
  a commit is also flushed as soon as handling has taken ``max_commit_delay``
  seconds since the oldest uncommitted entry, to bound that re-work.
  ``batch_commit=False`` commits every entry on its own.
- ``stop()`` (SIGTERM) finishes the current entry and commits what was
  handled; unprocessed ones stay pending and are picked up again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from .clients import server_version
from .luascripts import run_script
from .redis_acl import APP_PREFIX

log = logging.getLogger(__name__)

MAX_WORK_MS = 10_000
DONE_MARKER_TTL = 7 * 24 * 3600


def dlq_name(stream: str) -> str:
    return f"{stream}:dlq"


def effects_key(stream: str) -> str:
    """Hash: entry id -> how many times its effect was applied (always 1)."""
    return f"{stream}:effects"


def progress_key(stream: str) -> str:
    """Hash: failures, dead_lettered and trimmed_unprocessed counters."""
    return f"{stream}:progress"


def marker_key(stream: str, entry_id: str) -> str:
    return f"{stream}:done:{entry_id}"


OUTAGE_PREFIX = f"{APP_PREFIX}outage:"


def outage_key(dependency: str) -> str:
    """Flag of a simulated downstream outage: while this key exists, entries
    with ``depends_on=<dependency>`` fail (``SET app:outage:<name> 1`` starts
    it, ``DEL`` ends it)."""
    return f"{OUTAGE_PREFIX}{dependency}"


def produce(
    client: redis.Redis, stream: str, fields: dict[str, str], maxlen: int
) -> str:
    """XADD with an approximate MAXLEN (``~``): bounded memory, cheap trimming."""
    return client.xadd(stream, fields, maxlen=maxlen, approximate=True)


class PoisonEntryError(Exception):
    """The entry can never be processed (demo: field ``poison``)."""


class DependencyDownError(Exception):
    """A downstream the entry needs is down (demo: the flag ``outage_key``)."""


Handler = Callable[["StreamConsumer", str, dict[str, str]], None]


def process_entry(
    consumer: StreamConsumer, entry_id: str, fields: dict[str, str]
) -> None:
    """The demo handler: optional simulated work; raises for a poison entry.

    A handler may run more than once for an entry (at-least-once delivery);
    the recorded effect happens once (StreamConsumer.commit_many).
    """
    if "poison" in fields:
        raise PoisonEntryError(f"poison entry {entry_id}")
    dependency = fields.get("depends_on")
    if dependency and consumer.client.exists(outage_key(dependency)):
        raise DependencyDownError(f"{dependency} is down ({outage_key(dependency)})")
    work_ms = fields.get("work_ms", "0")
    # isascii(): "²".isdigit() is True but int("²") raises.
    if work_ms.isascii() and work_ms.isdigit() and int(work_ms) > 0:
        consumer.wait(min(int(work_ms), MAX_WORK_MS) / 1000)


@dataclass
class ConsumerStats:
    processed: int = 0
    duplicates: int = 0
    failed: int = 0
    dead_lettered: int = 0
    claimed: int = 0
    trimmed_unprocessed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class StreamConsumer:
    """One consumer of a consumer group. ``run()`` until ``stop()``.

    ``autoclaim``: claim with XAUTOCLAIM (True) or XPENDING + XCLAIM (False);
    None (default) asks the server once (HELLO: XAUTOCLAIM needs 6.2).
    ``block_ms`` must stay below the client's socket timeout, or the blocking
    read times out as an error instead of returning empty.
    """

    def __init__(
        self,
        client: redis.Redis,
        stream: str,
        group: str,
        consumer: str,
        *,
        handler: Handler = process_entry,
        max_deliveries: int = 5,
        claim_idle_ms: int = 60_000,
        block_ms: int = 2_000,
        batch: int = 10,
        dlq_maxlen: int = 10_000,
        batch_commit: bool = True,
        max_commit_delay: float = 0.1,
        autoclaim: bool | None = None,
    ) -> None:
        if max_deliveries < 1:
            raise ValueError("max_deliveries must be >= 1")
        if batch < 1:
            raise ValueError("batch must be >= 1")
        socket_timeout = client.connection_pool.connection_kwargs.get("socket_timeout")
        if block_ms < 0 or (socket_timeout and block_ms >= socket_timeout * 1000):
            raise ValueError(
                f"block_ms must be between 0 and the client's socket timeout "
                f"({socket_timeout} s); got {block_ms}"
            )
        self.client = client
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.handler = handler
        self.max_deliveries = max_deliveries
        self.claim_idle_ms = claim_idle_ms
        self.block_ms = block_ms
        self.batch = batch
        self.dlq_maxlen = dlq_maxlen
        self.batch_commit = batch_commit
        self.max_commit_delay = max_commit_delay
        self.stats = ConsumerStats()
        self._stop = threading.Event()
        self._autoclaim_cursor = "0-0"
        self._pending_cursor = "-"  # XPENDING + XCLAIM paging (Redis 6.0)
        self._has_autoclaim = autoclaim

    # -- lifecycle ---------------------------------------------------------
    def stop(self) -> None:
        """Ask run() to return after the entry in progress."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def wait(self, seconds: float) -> None:
        """Sleep that a stop() does not interrupt (work in progress finishes)."""
        time.sleep(seconds)

    def ensure_group(self) -> None:
        """XGROUP CREATE <stream> <group> 0 MKSTREAM; only BUSYGROUP is expected."""
        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
            log.info(
                "created consumer group %s on %s from id 0", self.group, self.stream
            )
        except redis.ResponseError as exc:
            if not str(exc).startswith("BUSYGROUP"):
                raise

    @property
    def uses_autoclaim(self) -> bool:
        """XAUTOCLAIM (>= 6.2) or XPENDING + XCLAIM; detected once unless given."""
        if self._has_autoclaim is None:
            self._has_autoclaim = server_version(self.client) >= (6, 2, 0)
        return self._has_autoclaim

    def run(self, *, on_ready: Callable[[], None] | None = None) -> ConsumerStats:
        self.ensure_group()
        log.info(
            "consumer %s reading %s group %s (claim idle %d ms, %s, max deliveries %d)",
            self.consumer,
            self.stream,
            self.group,
            self.claim_idle_ms,
            "XAUTOCLAIM" if self.uses_autoclaim else "XPENDING+XCLAIM",
            self.max_deliveries,
        )
        if on_ready:
            on_ready()
        self.process_own_pending()
        while not self.stopping:
            self.claim_stale()
            if self.stopping:
                break
            self.read_new()
        log.info("consumer %s stopped: %s", self.consumer, self.stats)
        return self.stats

    # -- reading -----------------------------------------------------------
    def process_own_pending(self) -> None:
        """Entries delivered to this consumer name before a restart (id 0)."""
        while not self.stopping:
            reply = self.client.xreadgroup(
                self.group, self.consumer, {self.stream: "0"}, count=self.batch
            )
            entries = reply[0][1] if reply else []
            if not entries:
                return
            self._handle_batch(entries)
            if len(entries) < self.batch:
                return

    def read_new(self) -> int:
        reply = self.client.xreadgroup(
            self.group,
            self.consumer,
            {self.stream: ">"},
            count=self.batch,
            block=self.block_ms,
        )
        entries = reply[0][1] if reply else []
        self._handle_batch(entries, first_delivery=True)
        return len(entries)

    def claim_stale(self) -> int:
        """Take over entries idle longer than claim_idle_ms in anyone's PEL.

        One page of ``batch`` pending entries per call; a cursor walks the
        whole pending list and wraps around, so a head of fresh entries never
        starves stale ones behind it.
        """
        if self.uses_autoclaim:
            reply = self.client.xautoclaim(
                self.stream,
                self.group,
                self.consumer,
                min_idle_time=self.claim_idle_ms,
                start_id=self._autoclaim_cursor,
                count=self.batch,
            )
            self._autoclaim_cursor = reply[0] or "0-0"
            entries = reply[1]
            # Redis >= 7.0 drops entries deleted (trimmed) while pending from
            # the PEL and names them in a third element.
            deleted = reply[2] if len(reply) > 2 else []
            if deleted:
                self._note_trimmed(list(deleted))
        else:
            entries = self._xpending_xclaim_page()
        if entries:
            self.stats.claimed += len(entries)
            log.info("claimed %d stale entries", len(entries))
            self._handle_batch(entries)
        return len(entries)

    def _xpending_xclaim_page(self) -> list[tuple[str, dict[str, str] | None]]:
        """Redis 6.0: XPENDING from the cursor (no IDLE filter, no exclusive
        ranges before 6.2), XCLAIM the idle ones, move the cursor past the
        page; back to the start once the end of the list is reached."""
        pending = self.client.xpending_range(
            self.stream, self.group, min=self._pending_cursor, max="+", count=self.batch
        )
        if len(pending) < self.batch:
            self._pending_cursor = "-"
        else:
            ms, seq = _id_tuple(pending[-1]["message_id"])
            self._pending_cursor = f"{ms}-{seq + 1}"
        ids = [
            p["message_id"]
            for p in pending
            if p["time_since_delivered"] >= self.claim_idle_ms
        ]
        if not ids:
            return []
        entries = self.client.xclaim(
            self.stream, self.group, self.consumer, self.claim_idle_ms, ids
        )
        missing = sorted(set(ids) - {entry_id for entry_id, _ in entries})
        if missing:
            self._note_vanished(missing)
        return entries

    def _note_vanished(self, entry_ids: list[str]) -> None:
        """XCLAIM (Redis >= 7.0) silently drops entries deleted while pending.
        Those gone from the stream and never processed were trimmed away;
        the others were just taken or acked by someone else meanwhile."""
        with self.client.pipeline(transaction=False) as pipe:
            for entry_id in entry_ids:
                pipe.xrange(self.stream, entry_id, entry_id)
                pipe.exists(marker_key(self.stream, entry_id))
            replies = pipe.execute()
        gone = [
            entry_id
            for entry_id, in_stream, processed in zip(
                entry_ids, replies[::2], replies[1::2], strict=True
            )
            if not in_stream and not processed
        ]
        if gone:
            self._note_trimmed(gone)

    def _note_trimmed(self, entry_ids: list[str]) -> None:
        """Entries trimmed (MAXLEN) or deleted while still pending: their data
        is gone, so they are acked unprocessed; loudly, and counted."""
        with self.client.pipeline(transaction=True) as pipe:
            pipe.xack(self.stream, self.group, *entry_ids)
            pipe.hincrby(
                progress_key(self.stream), "trimmed_unprocessed", len(entry_ids)
            )
            pipe.execute()
        self.stats.trimmed_unprocessed += len(entry_ids)
        log.warning(
            "%d entries of %s were trimmed while pending and are lost "
            "unprocessed (stream MAXLEN too small for the backlog?): %s",
            len(entry_ids),
            self.stream,
            ", ".join(entry_ids[:20]),
        )

    def _delivery_counts(self, ids: list[str]) -> dict[str, int]:
        rows = self.client.xpending_range(
            self.stream,
            self.group,
            min=ids[0],
            max=ids[-1],
            count=len(ids) + 100,
            consumername=self.consumer,
        )
        return {r["message_id"]: int(r["times_delivered"]) for r in rows}

    def _handle_batch(
        self,
        entries: list[tuple[str, dict[str, str] | None]],
        *,
        first_delivery: bool = False,
    ) -> None:
        if not entries:
            return
        ids = [entry_id for entry_id, _ in entries]
        counts = {i: 1 for i in ids} if first_delivery else self._delivery_counts(ids)
        # Trimmed or deleted while pending (no fields): nothing left to process.
        gone = [entry_id for entry_id, fields in entries if not fields]
        if gone:
            self._note_trimmed(gone)
            entries = [e for e in entries if e[1]]
        handled: list[str] = []  # handler succeeded, effect not yet recorded
        since = 0.0
        for entry_id, fields in entries:
            if self.stopping:
                # The rest stay pending: our restart or another consumer takes them.
                break
            if not handled:
                since = time.monotonic()
            if self.handle(entry_id, fields, counts.get(entry_id, 1)):
                handled.append(entry_id)
            if handled and (
                not self.batch_commit
                or time.monotonic() - since >= self.max_commit_delay
            ):
                self.commit_many(handled)
                handled = []
        if handled:
            self.commit_many(handled)

    # -- processing --------------------------------------------------------
    def handle(self, entry_id: str, fields: dict[str, str], deliveries: int) -> bool:
        """Run the handler; True when it succeeded and the entry is to be
        committed (commit_many). Failures stay pending or go to the DLQ."""
        if deliveries > self.max_deliveries:
            self.dead_letter(entry_id, fields, deliveries, "too many deliveries")
            return False
        try:
            self.handler(self, entry_id, fields)
        except Exception as exc:
            self.stats.failed += 1
            self.client.hincrby(progress_key(self.stream), "failures", 1)
            if deliveries >= self.max_deliveries:
                self.dead_letter(entry_id, fields, deliveries, repr(exc))
            else:
                log.warning(
                    "entry %s failed (delivery %d of %d), stays pending: %r",
                    entry_id,
                    deliveries,
                    self.max_deliveries,
                    exc,
                )
            return False
        return True

    def commit_many(self, entry_ids: list[str]) -> list[bool]:
        """Record each entry's effect once and XACK them all: one atomic script,
        one round trip. Returns, per entry, whether its effect was recorded now
        (False: an earlier delivery had recorded it)."""
        flags = run_script(
            self.client,
            "commit_entries",
            keys=[
                self.stream,
                effects_key(self.stream),
                *[marker_key(self.stream, i) for i in entry_ids],
            ],
            args=[DONE_MARKER_TTL, self.consumer, self.group, *entry_ids],
        )
        applied = [bool(f) for f in flags]
        for entry_id, new in zip(entry_ids, applied, strict=True):
            if new:
                self.stats.processed += 1
            else:
                self.stats.duplicates += 1
                log.info(
                    "entry %s was already processed; acked without effect", entry_id
                )
        return applied

    def dead_letter(
        self, entry_id: str, fields: dict[str, str], deliveries: int, reason: str
    ) -> None:
        """Copy to <stream>:dlq and ack, in one transaction."""
        record = {
            **fields,
            "dlq_source_id": entry_id,
            "dlq_deliveries": str(deliveries),
            "dlq_reason": reason[:500],
            "dlq_consumer": self.consumer,
        }
        with self.client.pipeline(transaction=True) as pipe:
            pipe.xadd(
                dlq_name(self.stream), record, maxlen=self.dlq_maxlen, approximate=True
            )
            pipe.xack(self.stream, self.group, entry_id)
            pipe.hincrby(progress_key(self.stream), "dead_lettered", 1)
            pipe.execute()
        self.stats.dead_lettered += 1
        log.error(
            "entry %s moved to %s after %d deliveries: %s",
            entry_id,
            dlq_name(self.stream),
            deliveries,
            reason,
        )


def progress(client: redis.Redis, stream: str, group: str) -> dict[str, Any]:
    """What the consumers have done: for the API and the smoke check."""
    info: dict[str, Any] = {
        "stream": stream,
        "group": group,
        "length": client.xlen(stream),
        "dead_letter_length": client.xlen(dlq_name(stream)),
        "processed": client.hlen(effects_key(stream)),
        "group_exists": False,
    }
    counters = client.hgetall(progress_key(stream))
    info.update({k: int(v) for k, v in counters.items()})
    try:
        groups = client.xinfo_groups(stream)
    except redis.ResponseError:  # no such stream yet
        groups = []
    for g in groups:
        if g.get("name") == group:
            info.update(
                group_exists=True,
                pending=g.get("pending"),
                consumers=g.get("consumers"),
                last_delivered_id=g.get("last-delivered-id"),
                lag=g.get("lag"),
            )
    return info


@dataclass
class ReplayResult:
    """What replay_dead_letters found and did."""

    seen: int = 0  # dead-letter entries looked at (all of them in a dry run)
    moved: list[tuple[str, str]] = field(default_factory=list)  # (dlq id, new id)
    reasons: dict[str, int] = field(default_factory=dict)  # exception -> count
    dependencies: dict[str, int] = field(default_factory=dict)  # depends_on -> count
    left: int = 0  # entries in the dead-letter stream afterwards


def replay_dead_letters(
    client: redis.Redis,
    stream: str,
    *,
    maxlen: int,
    limit: int | None = None,
    batch: int = 100,
    dry_run: bool = False,
) -> ReplayResult:
    """Move up to ``limit`` entries (oldest first) from ``<stream>:dlq`` back
    into ``stream`` (lua/replay_dlq.lua: one atomic script per batch).

    Only entries that were in the DLQ when the run started are looked at: an
    entry that fails again and comes back meanwhile waits for the next run.
    A dry run only counts them, by failure reason and ``depends_on``.
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
            if "depends_on" in fields:
                name = fields["depends_on"]
                result.dependencies[name] = result.dependencies.get(name, 0) + 1
        if not dry_run:
            flat = run_script(
                client,
                "replay_dlq",
                keys=[stream, dlq, progress_key(stream)],
                args=[maxlen, *(entry_id for entry_id, _ in rows)],
            )
            result.moved += list(zip(flat[::2], flat[1::2], strict=True))
        ms, seq = _id_tuple(rows[-1][0])
        start = f"{ms}-{seq + 1}"
    result.left = client.xlen(dlq)
    return result


def trim(client: redis.Redis, stream: str, maxlen: int) -> dict[str, int]:
    """Trim a stream (approximate MAXLEN) and forget effects of entries gone.

    Used by the beat task; producers already trim on XADD.
    """
    trimmed = client.xtrim(stream, maxlen=maxlen, approximate=True)
    first = client.xrange(stream, count=1)
    pruned = 0
    if first:
        first_id = _id_tuple(first[0][0])
        stale = [
            entry_id
            for entry_id, _ in client.hscan_iter(effects_key(stream), count=1000)
            if _id_tuple(entry_id) < first_id
        ]
        for start in range(0, len(stale), 500):
            pruned += client.hdel(effects_key(stream), *stale[start : start + 500])
    return {"trimmed": int(trimmed), "effects_pruned": pruned}


def _id_tuple(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
