"""Redis Pub/Sub: publish, and a listener that survives Redis restarts.

Pub/Sub has no delivery guarantee: a message published while nobody is
subscribed (listener down, reconnecting, not yet confirmed) is dropped. Use
Streams (redisops.streams) for anything that must arrive. Everything that
depends on a subscription waits until Redis confirmed it.

The listener records what it received in a capped stream
(``app:pubsub:received``) so another host can check delivery, and keeps its
name in the sorted set ``app:pubsub:listeners`` (score: Redis time of its last
confirmed-alive check) while it is subscribed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from . import redis_acl

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
            mark_present(client, self.name)
            log.info("pubsub listener %s subscribed to %s", self.name, self.pattern)
            last_presence = time.monotonic()
            while not self._stop.is_set():
                msg = pubsub.get_message(timeout=1.0)
                if msg and msg["type"] in ("pmessage", "message"):
                    self._record(client, msg)
                elif msg and msg["type"] in ("psubscribe", "subscribe"):
                    # redis-py reconnected and subscribed again by itself.
                    self.subscriptions += 1
                    mark_present(client, self.name)
                    log.info("pubsub listener %s re-subscribed", self.name)
                if time.monotonic() - last_presence > PRESENCE_TTL / 3:
                    # Also proves the connection is alive: a dead one raises here.
                    pubsub.ping()
                    mark_present(client, self.name)
                    last_presence = time.monotonic()
            mark_absent(client, self.name)
        finally:
            pubsub.close()
            client.close()

    def _record(self, client: redis.Redis, msg: dict[str, Any]) -> None:
        self.received += 1
        record = {
            "channel": msg["channel"],
            "data": msg["data"],
            "listener": self.name,
            # Redis's clock, like everything else compared across hosts.
            "received_at": f"{_redis_now(client):.6f}",
        }
        client.xadd(
            self.record_stream, record, maxlen=self.record_maxlen, approximate=True
        )
        log.info("pubsub message on %s recorded", msg["channel"])
        if self.on_message:
            self.on_message(record)
