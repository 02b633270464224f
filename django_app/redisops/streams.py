"""Redis Streams: a producer and a consumer-group worker that loses nothing.

- The group is created from id 0 with MKSTREAM, so entries written before the
  first consumer started are processed too; only BUSYGROUP is ignored.
- New entries are read with ``>``; this consumer's own pending entries (from
  before a restart) are read first with ``0``.
- Entries are acked after processing. Entries left pending by a dead consumer
  are claimed after ``claim_idle_ms`` with XAUTOCLAIM (Redis >= 6.2) or
  XPENDING + XCLAIM (Redis 6.0).
- An entry that failed ``max_deliveries`` times goes to ``<stream>:dlq``
  (XADD + XACK in one MULTI).
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
from .ratelimit import lua_source

log = logging.getLogger(__name__)

MAX_WORK_MS = 10_000
DONE_MARKER_TTL = 7 * 24 * 3600


def dlq_name(stream: str) -> str:
    return f"{stream}:dlq"


def effects_key(stream: str) -> str:
    """Hash: entry id -> how many times its effect was applied (always 1)."""
    return f"{stream}:effects"


def progress_key(stream: str) -> str:
    """Hash: failures and dead_lettered counters."""
    return f"{stream}:progress"


def marker_key(stream: str, entry_id: str) -> str:
    return f"{stream}:done:{entry_id}"


def produce(
    client: redis.Redis, stream: str, fields: dict[str, str], maxlen: int
) -> str:
    """XADD with an approximate MAXLEN (``~``): bounded memory, cheap trimming."""
    return client.xadd(stream, fields, maxlen=maxlen, approximate=True)


class PoisonEntryError(Exception):
    """The entry can never be processed (demo: field ``poison``)."""


Handler = Callable[["StreamConsumer", str, dict[str, str]], None]


def process_entry(
    consumer: StreamConsumer, entry_id: str, fields: dict[str, str]
) -> None:
    """The demo handler: optional simulated work; raises for a poison entry.

    A handler may run more than once for an entry (at-least-once delivery);
    the recorded effect happens once (StreamConsumer.commit).
    """
    if "poison" in fields:
        raise PoisonEntryError(f"poison entry {entry_id}")
    work_ms = fields.get("work_ms", "0")
    if work_ms.isdigit() and int(work_ms) > 0:
        consumer.wait(min(int(work_ms), MAX_WORK_MS) / 1000)


@dataclass
class ConsumerStats:
    processed: int = 0
    duplicates: int = 0
    failed: int = 0
    dead_lettered: int = 0
    claimed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class StreamConsumer:
    """One consumer of a consumer group. ``run()`` until ``stop()``."""

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
    ) -> None:
        if max_deliveries < 1:
            raise ValueError("max_deliveries must be >= 1")
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
        self._has_autoclaim: bool | None = None
        self._commit = client.register_script(lua_source("commit_entries"))

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

    def run(self, *, on_ready: Callable[[], None] | None = None) -> ConsumerStats:
        self.ensure_group()
        self._has_autoclaim = server_version(self.client) >= (6, 2, 0)
        log.info(
            "consumer %s reading %s group %s (claim idle %d ms, %s, max deliveries %d)",
            self.consumer,
            self.stream,
            self.group,
            self.claim_idle_ms,
            "XAUTOCLAIM" if self._has_autoclaim else "XPENDING+XCLAIM",
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
        """Take over entries idle longer than claim_idle_ms in anyone's PEL."""
        if self._has_autoclaim is None:
            self._has_autoclaim = server_version(self.client) >= (6, 2, 0)
        if self._has_autoclaim:
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
        else:
            pending = self.client.xpending_range(
                self.stream, self.group, min="-", max="+", count=self.batch
            )
            ids = [
                p["message_id"]
                for p in pending
                if p["time_since_delivered"] >= self.claim_idle_ms
            ]
            entries = (
                self.client.xclaim(
                    self.stream, self.group, self.consumer, self.claim_idle_ms, ids
                )
                if ids
                else []
            )
        if entries:
            self.stats.claimed += len(entries)
            log.info("claimed %d stale entries", len(entries))
            self._handle_batch(entries)
        return len(entries)

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
        handled: list[str] = []  # handler succeeded, effect not yet recorded
        since = 0.0
        for entry_id, fields in entries:
            if self.stopping:
                # The rest stay pending: our restart or another consumer takes them.
                break
            if not fields:
                # Trimmed or deleted while pending: nothing left to process.
                self.client.xack(self.stream, self.group, entry_id)
                continue
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
        flags = self._commit(
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

    def commit(self, entry_id: str) -> bool:
        """Record one entry's effect once and XACK it, in one atomic script."""
        return self.commit_many([entry_id])[0]

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
