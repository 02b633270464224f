"""One consumer of a consumer group that loses nothing and applies each entry once.

- The group is created from id 0 with MKSTREAM, so entries written before the
  first consumer started are processed too; only BUSYGROUP is ignored.
- New entries are read with ``>``; this consumer's own pending entries (from
  before a restart) are read first with ``0``.
- Entries left pending by a dead or slow consumer are claimed after
  ``claim_idle_ms`` (claiming.py: XAUTOCLAIM or XPENDING + XCLAIM).
- The handler runs for each entry; an entry whose handler raised stays
  pending and is retried, and after ``max_deliveries`` goes to
  ``<stream>:dlq``. The default handler, ``apply_entry``, has nothing to do:
  an entry's effect is what the commit records.
- Processing is idempotent: after the handler succeeded, one Lua script
  records the effect under a processed-once marker and XACKs, atomically; a
  redelivered entry is acked without a second effect (acks.py).
- Commits are batched: the entries handled from one read are committed by one
  script call. An entry handled but not yet committed when the process dies is
  simply delivered again (its handler runs again, its effect still happens
  once), so a commit is also flushed as soon as handling has taken
  ``max_commit_delay`` seconds since the oldest uncommitted entry, to bound
  that re-work. ``batch_commit=False`` commits every entry on its own.
- ``stop()`` (SIGTERM) finishes the current entry and commits what was
  handled; unprocessed ones stay pending and are picked up again.
- Redis refusing writes (NOREPLICAS, READONLY: redisops.write_refusals) is
  waited out in process: the entries handled but not committed are held and
  committed first once writes are accepted, the rest stay pending and are
  read again (own pending list first); one WARNING per episode.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from ..write_refusals import WriteRefusals, refusal_kind
from . import acks
from .claiming import Claimer, Entry, claimer_for
from .keys import dlq_name, progress_key

log = logging.getLogger(__name__)

# Backoff while Redis is unreachable (a restart, a Sentinel failover that cut
# the connection): first wait, doubled up to the cap.
RECONNECT_FIRST_S = 0.2
RECONNECT_MAX_S = 5.0

Handler = Callable[["StreamConsumer", str, dict[str, str]], None]


def apply_entry(
    consumer: StreamConsumer, entry_id: str, fields: dict[str, str]
) -> None:
    """The default handler: an app entry needs no work beyond the effect the
    commit records, so every entry succeeds.

    A handler may run more than once for an entry (at-least-once delivery);
    the recorded effect happens once (StreamConsumer.commit_many). Failure
    rules for demos and drills: demo_failures.py.
    """


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
        handler: Handler = apply_entry,
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
        self._autoclaim = autoclaim
        self._claimer: Claimer | None = None
        # Handled, commit refused or cut off: committed first when writes
        # come back (the commit is idempotent, so a commit that did land
        # before the connection was cut changes nothing the second time).
        self._held: list[str] = []
        self.refusals = WriteRefusals(f"stream consumer {consumer}")

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
    def claimer(self) -> Claimer:
        """The claim strategy, chosen once (asks the server unless given)."""
        if self._claimer is None:
            self._claimer = claimer_for(
                self.client,
                self.stream,
                self.group,
                self.consumer,
                min_idle_ms=self.claim_idle_ms,
                count=self.batch,
                autoclaim=self._autoclaim,
            )
        return self._claimer

    @property
    def uses_autoclaim(self) -> bool:
        """XAUTOCLAIM (>= 6.2) or XPENDING + XCLAIM; detected once unless given."""
        return self.claimer.name == "XAUTOCLAIM"

    def _refused_wait(self, exc: redis.ResponseError, doing: str) -> None:
        """Wait out a refused write (re-raises any other ResponseError)."""
        kind = refusal_kind(exc)
        if kind is None:
            raise exc
        if kind == "READONLY":
            # A demoted master: the next try connects afresh (an address
            # that moved to the new master, a Sentinel asked again).
            self.client.connection_pool.disconnect()
        self._stop.wait(self.refusals.refused(exc, doing))

    def run(self, *, on_ready: Callable[[], None] | None = None) -> ConsumerStats:
        while not self.stopping:
            try:
                self.ensure_group()
                break
            except redis.ResponseError as exc:
                self._refused_wait(exc, "creating the consumer group")
        log.info(
            "consumer %s reading %s group %s (claim idle %d ms, %s, max deliveries "
            "%d, dead letters kept ~%d, handler %s)",
            self.consumer,
            self.stream,
            self.group,
            self.claim_idle_ms,
            self.claimer.name,
            self.max_deliveries,
            self.dlq_maxlen,
            getattr(self.handler, "__qualname__", self.handler),
        )
        if on_ready:
            on_ready()
        backoff = RECONNECT_FIRST_S
        lost = False
        while not self.stopping:
            try:
                if lost:
                    # A restarted Redis without persistence has no group.
                    self.ensure_group()
                    log.info("consumer %s reconnected", self.consumer)
                    lost = False
                if self._held:
                    self.commit_many(self._held)
                    self._held = []
                self.process_own_pending()  # XREADGROUP: a write, accepted
                self.refusals.accepted()
                while not self.stopping:
                    self.claim_stale()
                    if self.stopping:
                        break
                    self.read_new()
                    backoff = RECONNECT_FIRST_S
            except redis.ResponseError as exc:
                # Writes refused (XREADGROUP and XAUTOCLAIM are writes too):
                # the group position and pending entries stay in Redis, the
                # handled ones in self._held.
                self._refused_wait(
                    exc, f"reading or committing ({len(self._held)} handled held)"
                )
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                # The entry in hand stays pending (not acknowledged): this
                # consumer's pending list is read again first on reconnect.
                lost = True
                log.warning(
                    "consumer %s lost Redis (%s); reconnecting in %.1fs",
                    self.consumer,
                    exc,
                    backoff,
                )
                self._stop.wait(backoff)
                backoff = min(backoff * 2, RECONNECT_MAX_S)
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
        """Take over one page of entries idle longer than claim_idle_ms in
        anyone's pending list, and handle them."""
        page = self.claimer.claim_page()
        if page.gone:
            self._ack_trimmed(page.gone)
        if page.entries:
            self.stats.claimed += len(page.entries)
            log.info("claimed %d stale entries", len(page.entries))
            self._handle_batch(page.entries)
        return len(page.entries)

    def _ack_trimmed(self, entry_ids: list[str]) -> None:
        acks.ack_trimmed(self.client, self.stream, self.group, entry_ids)
        self.stats.trimmed_unprocessed += len(entry_ids)

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
        self, entries: list[Entry], *, first_delivery: bool = False
    ) -> None:
        if not entries:
            return
        ids = [entry_id for entry_id, _ in entries]
        counts = {i: 1 for i in ids} if first_delivery else self._delivery_counts(ids)
        # Trimmed or deleted while pending (no fields): nothing left to process.
        gone = [entry_id for entry_id, fields in entries if not fields]
        if gone:
            self._ack_trimmed(gone)
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
                self._commit_or_hold(handled)
                handled = []
        if handled:
            self._commit_or_hold(handled)

    def _commit_or_hold(self, handled: list[str]) -> None:
        """commit_many; when it fails the entries are held for run() to commit
        once Redis is back, instead of being handled again."""
        try:
            self.commit_many(handled)
        except redis.RedisError:
            self._held = [*self._held, *handled]
            raise

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
        """Record each entry's effect once and XACK them all (acks.commit_entries).
        Returns, per entry, whether its effect was recorded now."""
        applied = acks.commit_entries(
            self.client, self.stream, self.group, self.consumer, entry_ids
        )
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
        record = acks.dead_letter_record(
            fields, entry_id, deliveries, reason, self.consumer
        )
        acks.dead_letter(
            self.client, self.stream, self.group, entry_id, record, self.dlq_maxlen
        )
        self.stats.dead_lettered += 1
        log.error(
            "entry %s moved to %s after %d deliveries: %s",
            entry_id,
            dlq_name(self.stream),
            deliveries,
            reason,
        )
