"""Redis Pub/Sub: publish, and a listener that survives Redis restarts.

Pub/Sub has no delivery guarantee: a message published while nobody is
subscribed (listener down, reconnecting, not yet confirmed) is dropped. Use
Streams (redisops.streams) for anything that must arrive. Everything that
depends on a subscription waits until Redis confirmed it.

The listener records what it received in a capped stream
(``app:pubsub:received``) so another host can check delivery, and keeps its
name in the sorted set ``app:pubsub:listeners`` (score: Redis time of its last
confirmed-alive check) while it is subscribed.

While Redis refuses writes (NOREPLICAS, READONLY: redisops.write_refusals)
the listener stays subscribed (PUBLISH is no write, messages keep arriving),
holds what it receives (at most ``record_maxlen``, oldest dropped first, with
a WARNING) and records it, in order, once writes are accepted again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import redis

from . import redis_acl
from .write_refusals import WriteRefusals, is_write_refused, refusal_kind

log = logging.getLogger(__name__)

PRESENCE_KEY = f"{redis_acl.APP_PREFIX}pubsub:listeners"
PRESENCE_TTL = 15
# Records kept of what the listeners received (XADD MAXLEN ~, trim_streams):
# with the API's message size it bounds the record stream in bytes.
RECORD_MAXLEN = 1000
MAX_MESSAGE_BYTES = 4096


def channel_for(topic: str) -> str:
    return f"{redis_acl.PUBSUB_CHANNEL_PREFIX}{topic}"


def publish(client: redis.Redis, topic: str, message: str) -> int:
    """PUBLISH; returns how many subscribers received it (0 = dropped)."""
    return int(client.publish(channel_for(topic), message))


def _redis_now(client: redis.Redis) -> float:
    seconds, micros = client.time()
    return seconds + micros / 1_000_000


def mark_present(client: redis.Redis, name: str) -> None:
    client.zadd(PRESENCE_KEY, {name: _redis_now(client)})


def mark_absent(client: redis.Redis, name: str) -> None:
    client.zrem(PRESENCE_KEY, name)


def listeners(client: redis.Redis) -> list[str]:
    """Names of listeners confirmed subscribed within the last PRESENCE_TTL s."""
    now = _redis_now(client)
    client.zremrangebyscore(PRESENCE_KEY, "-inf", now - 10 * PRESENCE_TTL)
    return sorted(client.zrangebyscore(PRESENCE_KEY, now - PRESENCE_TTL, "+inf"))


def received(client: redis.Redis, stream: str, count: int = 20) -> list[dict[str, str]]:
    """The newest records of what the listeners received, newest first."""
    return [{"id": i, **f} for i, f in client.xrevrange(stream, count=count)]


def subscribe_confirmed(
    pubsub: redis.client.PubSub, channel: str, timeout: float = 5.0
) -> None:
    """SUBSCRIBE (PSUBSCRIBE for a glob) and wait for Redis's confirmation.

    ACL note: a PSUBSCRIBE pattern must equal an allowed channel pattern
    literally, so only the declared PUBSUB_PATTERN works as a pattern.
    """
    is_pattern = any(c in channel for c in "*?[")
    kind = "psubscribe" if is_pattern else "subscribe"
    getattr(pubsub, kind)(channel)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = pubsub.get_message(timeout=0.2)
        if msg and msg["type"] == kind and msg["channel"] == channel:
            return
    raise TimeoutError(f"no {kind} confirmation for {channel} within {timeout}s")


class Listener:
    """PSUBSCRIBE a pattern, record every message, reconnect with backoff."""

    def __init__(
        self,
        client_factory: Callable[[], redis.Redis],
        *,
        name: str,
        pattern: str = redis_acl.PUBSUB_PATTERN,
        record_stream: str,
        record_maxlen: int = RECORD_MAXLEN,
        on_message: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.client_factory = client_factory
        self.name = name
        self.pattern = pattern
        self.record_stream = record_stream
        self.record_maxlen = record_maxlen
        self.on_message = on_message
        self.received = 0
        self.subscriptions = 0  # confirmed (re)subscriptions
        self._stop = threading.Event()
        # Records not written yet (writes refused), oldest first.
        self._held: deque[dict[str, str]] = deque(maxlen=record_maxlen)
        self.dropped = 0
        self._present_due = False
        self._next_write = 0.0
        self.refusals = WriteRefusals(f"pubsub listener {name}")

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            try:
                self._listen_once()
                backoff = 0.2
            except (redis.ConnectionError, redis.TimeoutError, TimeoutError) as exc:
                log.warning(
                    "pubsub listener %s lost Redis (%s); reconnecting in %.1fs",
                    self.name,
                    exc,
                    backoff,
                )
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
        log.info(
            "pubsub listener %s stopped after %d messages", self.name, self.received
        )

    def _listen_once(self) -> None:
        client = self.client_factory()
        pubsub = client.pubsub(ignore_subscribe_messages=False)
        try:
            subscribe_confirmed(pubsub, self.pattern)
            self.subscriptions += 1
            self._present_due = True
            self._flush(client)
            log.info("pubsub listener %s subscribed to %s", self.name, self.pattern)
            last_presence = time.monotonic()
            while not self._stop.is_set():
                msg = pubsub.get_message(timeout=1.0)
                if msg and msg["type"] in ("pmessage", "message"):
                    self._hold(client, msg)
                elif msg and msg["type"] in ("psubscribe", "subscribe"):
                    # redis-py reconnected and subscribed again by itself.
                    self.subscriptions += 1
                    self._present_due = True
                    log.info("pubsub listener %s re-subscribed", self.name)
                if time.monotonic() - last_presence > PRESENCE_TTL / 3:
                    # Also proves the connection is alive: a dead one raises here.
                    pubsub.ping()
                    self._present_due = True
                    last_presence = time.monotonic()
                self._flush(client)
            try:
                mark_absent(client, self.name)
            except redis.ResponseError as exc:
                if not is_write_refused(exc):
                    raise
                # The presence expires by itself (PRESENCE_TTL).
        finally:
            pubsub.close()
            client.close()

    def _hold(self, client: redis.Redis, msg: dict[str, Any]) -> None:
        self.received += 1
        if len(self._held) == self._held.maxlen:
            self.dropped += 1
            if self.dropped % 1000 == 1:  # the first, then every 1000th
                log.warning(
                    "pubsub listener %s holds %d unrecorded messages (writes "
                    "refused): dropping the oldest (%d so far)",
                    self.name,
                    len(self._held),
                    self.dropped,
                )
        self._held.append(
            {
                "channel": msg["channel"],
                "data": msg["data"],
                "listener": self.name,
                # Redis's clock (TIME is no write), like everything else
                # compared across hosts.
                "received_at": f"{_redis_now(client):.6f}",
            }
        )

    def _flush(self, client: redis.Redis) -> None:
        """Write the presence and the held records, oldest first; while
        writes are refused, try again after a backoff, without leaving the
        subscription."""
        if not (self._held or self._present_due):
            return
        if time.monotonic() < self._next_write:
            return
        try:
            if self._present_due:
                mark_present(client, self.name)
                self._present_due = False
            while self._held:
                self._record(client, self._held[0])
                record = self._held.popleft()
                if self.on_message:
                    self.on_message(record)
        except redis.ResponseError as exc:
            kind = refusal_kind(exc)
            if kind is None:
                raise
            if kind == "READONLY":
                # Connect afresh next time; the subscription stays.
                client.connection_pool.disconnect(inuse_connections=False)
            delay = self.refusals.refused(
                exc, f"recording ({len(self._held)} messages held)"
            )
            self._next_write = time.monotonic() + delay
            return
        self.refusals.accepted()

    def _record(self, client: redis.Redis, record: dict[str, str]) -> None:
        client.xadd(
            self.record_stream, record, maxlen=self.record_maxlen, approximate=True
        )
        log.info("pubsub message on %s recorded", record["channel"])
