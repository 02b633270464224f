"""Celery's Redis broker transport and result backend, waiting out refused writes.

Redis refusing writes (NOREPLICAS, READONLY: redisops.write_refusals) used to
end a worker: kombu's ack (a MULTI of ZREM + HDEL), its BRPOP (a write) or
its periodic restore raise a plain ``ResponseError`` into the event loop
("Unrecoverable error"), and the result backend retries only connection
errors. Here:

- Transport / SentinelTransport (``CELERY_BROKER_TRANSPORT``, chosen by
  the broker URL: ``redisops.connections.celery_broker_transport``): a
  refused ack, reject or delivery record is deferred, in order, and retried
  from the event loop after a bounded, jittered backoff; no BRPOP is sent
  while writes are refused or deferred writes wait; the periodic restore
  skips a refused round; declaring queues (at the consumer's start) waits
  until the write is taken. The message stays unacknowledged meanwhile (the
  worker fetches no more than its prefetch), so it is acked once, when
  writes return, and never run twice. A publish on a channel that a
  reconnect closed under the producer is a connection error, which the
  publish's retry policy sends again; an ack or reject on such a channel is
  skipped with a warning (closing it put the message back in its queue).
- RedisBackend / SentinelBackend (``config.celery_app`` maps the ``redis``,
  ``rediss`` and ``sentinel`` schemes to them): a refused write counts as safe
  to retry, so ``CELERY_RESULT_BACKEND_ALWAYS_RETRY`` retries storing a
  result within ``CELERY_RESULT_BACKEND_MAX_RETRIES``.

Each logs one WARNING per episode (redisops.write_refusals.WriteRefusals).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from celery.backends import redis as celery_redis
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.json import dumps
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from .connections import NO_SETINFO
from .write_refusals import WriteRefusals, is_write_refused

Write = Callable[[], object]
log = logging.getLogger(__name__)


class WaitingQoS(kombu_redis.QoS):
    """kombu's Redis ack emulation; its writes go through the channel's
    ``write_or_defer``."""

    channel: Any

    def append(self, message: Any, delivery_tag: str) -> None:
        # kombu_redis.QoS.append, its write deferred when refused: the
        # message was popped from its queue already, so it is recorded as
        # unacked as soon as Redis takes writes again, and delivered now.
        delivery = message.delivery_info
        record = dumps([message._raw, delivery["exchange"], delivery["routing_key"]])

        def write() -> None:
            with self.pipe_or_acquire() as pipe:
                pipe.zadd(self.unacked_index_key, {delivery_tag: time.time()}).hset(
                    self.unacked_key, delivery_tag, record
                ).execute()

        self.channel.write_or_defer(write, "recording a delivered task")
        virtual.QoS.append(self, message, delivery_tag)

    def _closed(self, delivery_tag: str, doing: str) -> bool:
        # The channel closed with the broker connection (a failover) while the
        # task ran: closing it put its unacknowledged messages back in their
        # queue (or, if Redis was out of reach then, the visibility timeout
        # will), so this one is delivered again; there is nothing to ack here.
        if self.channel.connection is not None:
            return False
        log.warning(
            "%s %s skipped: its channel closed with the broker connection and "
            "the message goes back to its queue, to be delivered again",
            doing,
            delivery_tag,
        )
        return True

    def ack(self, delivery_tag: str) -> None:
        if self._closed(delivery_tag, "acknowledging"):
            return
        self.channel.write_or_defer(
            lambda: kombu_redis.QoS.ack(self, delivery_tag), "acknowledging a task"
        )

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        if self._closed(delivery_tag, "rejecting"):
            return
        self.channel.write_or_defer(
            lambda: kombu_redis.QoS.reject(self, delivery_tag, requeue=requeue),
            "rejecting a task",
        )

    def restore_unacked(self, client: Any = None) -> None:
        # At shutdown kombu puts back what this worker holds unacked: a task
        # whose ack is deferred must not go back, so try its ack first.
        self.channel.flush_deferred(now=True)
        super().restore_unacked(client)

    def restore_visible(self, *args: Any, **kwargs: Any) -> None:
        self.channel.flush_deferred()
        try:
            super().restore_visible(*args, **kwargs)
        except ResponseError as exc:
            if not is_write_refused(exc):
                raise
            # Periodic: the next round restores what this one could not.


class WaitingChannelMixin:
    """Defers refused writes and holds back BRPOP while writes are refused."""

    QoS = WaitingQoS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._deferred: list[Write] = []
        self._retry_at = 0.0
        self.refusals = WriteRefusals("celery worker (broker)")
        super().__init__(*args, **kwargs)

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        # No CLIENT SETINFO (connections.NO_SETINFO): on Redis 6.0 every
        # connection's was an ACL denial for app_broker (CLIENT is not in
        # @connection there). The Sentinel channel's master pool reads these too.
        return {**super()._connparams(asynchronous), **NO_SETINFO}  # type: ignore[misc]

    def _refused(self, exc: ResponseError, doing: str) -> None:
        self._retry_at = time.monotonic() + self.refusals.refused(exc, doing)

    def write_or_defer(self, write: Write, doing: str) -> None:
        """Run ``write`` now, or after the writes deferred before it."""
        if not self._deferred:
            try:
                write()
                return
            except ResponseError as exc:
                if not is_write_refused(exc):
                    raise
                self._refused(exc, doing)
        self._deferred.append(write)

    def flush_deferred(self, *, now: bool = False) -> bool:
        """Run the deferred writes, oldest first, once the backoff has passed
        (``now``: at once); True when none is left."""
        if not self._deferred:
            return True
        if not now and time.monotonic() < self._retry_at:
            return False
        while self._deferred:
            try:
                self._deferred[0]()
            except ResponseError as exc:
                if not is_write_refused(exc):
                    raise
                self._refused(exc, f"{len(self._deferred)} deferred writes")
                return False
            self._deferred.pop(0)
        self.refusals.accepted()
        return True

    def _queue_bind(self, *args: Any, **kwargs: Any) -> Any:
        # Declaring queues (SADD of a binding) happens when the worker's
        # consumer starts: nothing runs yet, so it waits here until Redis
        # takes the write, instead of failing the start.
        while True:
            try:
                return super()._queue_bind(*args, **kwargs)  # type: ignore[misc]
            except ResponseError as exc:
                if not is_write_refused(exc):
                    raise
                time.sleep(self.refusals.refused(exc, "declaring its queues"))

    def _create_client(self, asynchronous: bool = False) -> Any:
        # A closed channel still in a producer's hands: kombu's retry around
        # declaring a queue (Connection.ensure) closes every channel of the
        # connection it collects and revives only the queue, so the publish
        # that declared it goes on with this one, and kombu 5.6.2 failed it
        # with AttributeError (its connection is gone). As a connection error
        # the publish's own retry revives the producer and sends again.
        if self.connection is None:  # type: ignore[attr-defined]
            raise RedisConnectionError("the broker channel was closed by a reconnect")
        return super()._create_client(asynchronous)  # type: ignore[misc]

    def _brpop_start(self, timeout: float | None = None) -> None:
        # No fetch while writes are refused (BRPOP is one) or deferred acks
        # wait: the loop calls this again on its next tick.
        if time.monotonic() < self._retry_at or not self.flush_deferred():
            return
        super()._brpop_start(timeout)  # type: ignore[misc]

    def _brpop_read(self, **options: Any) -> Any:
        try:
            delivered = super()._brpop_read(**options)  # type: ignore[misc]
        except virtual.Empty:
            self.refusals.accepted()  # a BRPOP that timed out was accepted
            raise
        except ResponseError as exc:
            if not is_write_refused(exc):
                raise
            self._refused(exc, "fetching tasks (BRPOP)")
            raise virtual.Empty() from None
        self.refusals.accepted()
        return delivered


class Channel(WaitingChannelMixin, kombu_redis.Channel):
    pass


class SentinelChannel(WaitingChannelMixin, kombu_redis.SentinelChannel):
    pass


class StaleFdSkippingPoller(kombu_redis.MultiChannelPoller):
    """kombu's poller, skipping a file descriptor whose channel is gone: after a
    reconnect (a failover under load) the event loop can still report the old one,
    and kombu 5.6.2's lookup raised KeyError out of the loop, which ended the worker
    ("Unrecoverable error: KeyError(12)" in mingle; celery/kombu#2582). kombu 5.7.0
    has the same guard (celery/kombu#2561)."""

    def on_readable(self, fileno: int) -> None:
        if fileno in self._fd_to_chan:
            super().on_readable(fileno)

    def handle_event(self, fileno: int, event: int) -> Any:
        if fileno not in self._fd_to_chan:
            return None
        return super().handle_event(fileno, event)


# kombu's Connection.ensure (a publish's retry policy) gives up on the second
# connection error after a reconnect when the transport does not classify its
# errors as recoverable ("cannot distinguish": kombu's Redis transport does not),
# whatever max_retries says. A switchover gives two in a row: the publish's
# connection is dropped, then, after the reconnect, the channel the producer still
# holds was closed by it (WaitingChannelMixin._create_client), and the request
# failed with 503 "broker unavailable" (1 of ~115 in the ha switchover test).
# The same errors as kombu's fallback (connection + channel errors), classified:
# the retry policy alone bounds the retries.
_RECOVERABLE = (
    kombu_redis.Transport.connection_errors + kombu_redis.Transport.channel_errors
)


class WaitingTransportMixin:
    """Retries deferred writes every second, also while the prefetch limit
    keeps the loop from starting a BRPOP."""

    cycle: Any
    recoverable_connection_errors = _RECOVERABLE
    recoverable_channel_errors: tuple[type[Exception], ...] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cycle = StaleFdSkippingPoller()

    def register_with_event_loop(self, connection: Any, loop: Any) -> None:
        super().register_with_event_loop(connection, loop)  # type: ignore[misc]

        def flush() -> None:
            for channel in self.cycle._channels:
                channel.flush_deferred()

        loop.call_repeatedly(1.0, flush)


class Transport(WaitingTransportMixin, kombu_redis.Transport):
    Channel = Channel


class SentinelTransport(WaitingTransportMixin, kombu_redis.SentinelTransport):
    Channel = SentinelChannel


class WaitingBackendMixin:
    """A refused write is safe to retry: storing a result retries it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.refusals = WriteRefusals("celery result backend")
        # No CLIENT SETINFO, as the broker's channels (their _connparams).
        self.connparams.update(NO_SETINFO)  # type: ignore[attr-defined]

    def exception_safe_to_retry(self, exc: Exception) -> bool:
        return super().exception_safe_to_retry(exc) or is_write_refused(exc)  # type: ignore[misc]

    def on_backend_retryable_error(self, exc: Exception) -> None:
        if is_write_refused(exc):
            self.refusals.refused(exc, "storing a task's state")

    def _store_result(self, *args: Any, **kwargs: Any) -> Any:
        stored = super()._store_result(*args, **kwargs)  # type: ignore[misc]
        self.refusals.accepted()
        return stored


class RedisBackend(WaitingBackendMixin, celery_redis.RedisBackend):
    pass


class SentinelBackend(WaitingBackendMixin, celery_redis.SentinelBackend):
    pass
