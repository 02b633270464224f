"""Celery tasks. Late acks + reject on worker lost (settings) mean any task may
run again after a crash. ``add`` and ``heavy_checksum`` are pure,
``record_payment`` applies its effect once however often it runs; ``flaky``
counts every attempt (that is its point) and ``notify`` may send twice.

Names are explicit so routes (``redisops.tasks.heavy_*`` -> queue ``heavy``)
and the API's allow-list don't depend on import paths.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from dataclasses import dataclass

import redis
from celery import Task, shared_task
from django.conf import settings

from . import pubsub, redis_acl, streams
from .clients import app_redis
from .luascripts import run_script
from .ratelimit import TokenBucket

log = logging.getLogger(__name__)

TASK_KEY_PREFIX = f"{redis_acl.APP_PREFIX}task:"
HEARTBEAT_KEY = f"{redis_acl.APP_PREFIX}beat:heartbeat"
# The ledger of a message without a client: enqueued by a version before
# per-client ledgers (a rolling upgrade) or from a shell; the API never sends one.
LEDGER_KEY = f"{TASK_KEY_PREFIX}ledger"
NOTIFY_LOG_KEY = f"{TASK_KEY_PREFIX}notify:sent"


def ledger_key(client: str | None) -> str:
    """The client's own ledger: ``app:task:ledger:<client>`` (names hold no ':')."""
    return f"{LEDGER_KEY}:{client}" if client else LEDGER_KEY


def payment_marker_key(client: str | None, payment_id: str) -> str:
    """Processed-once marker of a payment; payment ids are per client too, so
    no client can use up (or probe) another's."""
    done = f"{TASK_KEY_PREFIX}payment:done:"
    return f"{done}{client}:{payment_id}" if client else f"{done}{payment_id}"


def flaky_counter_key(client: str | None, key: str) -> str:
    return (
        f"{TASK_KEY_PREFIX}flaky:{client}:{key}"
        if client
        else (f"{TASK_KEY_PREFIX}flaky:{key}")
    )


class TransientError(Exception):
    """A failure worth retrying (the demo's stand-in for a flaky upstream)."""


class HeartbeatError(Exception):
    """Beat's heartbeat is missing or too old."""


class LedgerFullError(Exception):
    """The client's ledger holds APP_LEDGER_MAX_ACCOUNTS accounts already."""


# What flaky retries: only what we expect to be transient; a bug (ValueError,
# TypeError...) fails at once.
RETRY_ON = (TransientError, redis.ConnectionError, redis.TimeoutError)
FLAKY_COUNTER_TTL = 3600


def retry_countdown(retries: int, base: float, cap: float) -> float:
    """Exponential backoff with "equal jitter": retry n waits between half and
    all of min(cap, base * 2**n) seconds. It grows with n, never exceeds the
    cap, and two clients never wait the same (no thundering herd)."""
    ceiling = min(cap, base * 2**retries)
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - not crypto


@shared_task(name="redisops.tasks.add")
def add(x: int, y: int) -> int:
    """The simple one."""
    return x + y


@shared_task(name="redisops.tasks.heavy_checksum")
def heavy_checksum(size_kib: int, rounds: int) -> str:
    """CPU work, routed to the ``heavy`` queue."""
    digest = b"\0" * (size_kib * 1024)
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest() * (size_kib * 32)
    return hashlib.sha256(digest).hexdigest()


def count_attempt(client: redis.Redis, counter: str) -> int:
    """INCR a counter whose expiry is set once, when it is created (SET NX EX
    + INCR in one MULTI): later attempts never push the expiry forward."""
    with client.pipeline(transaction=True) as pipe:
        pipe.set(counter, 0, nx=True, ex=FLAKY_COUNTER_TTL)
        pipe.incr(counter)
        _, attempt = pipe.execute()
    return int(attempt)


@shared_task(bind=True, name="redisops.tasks.flaky", max_retries=5)
def flaky(
    self: Task, key: str, failures: int, client: str | None = None
) -> dict[str, int]:
    """Fails with TransientError ``failures`` times for ``key``, then succeeds.

    Retries only RETRY_ON, up to 5 times, after retry_countdown() seconds
    (settings.APP_RETRY_BACKOFF: base and cap). Every attempt is counted in
    Redis first (per API client: one client's key never counts another's
    attempts), so a test can tell how often it ran.
    """
    try:
        attempt = count_attempt(app_redis(), flaky_counter_key(client, key))
        if failures < 0:
            raise ValueError("failures must be >= 0")  # a bug: never retried
        if attempt <= failures:
            log.info("flaky %s attempt %d fails on purpose", key, attempt)
            raise TransientError(f"attempt {attempt} of {key} failed")
    except RETRY_ON as exc:
        backoff = settings.APP_RETRY_BACKOFF
        countdown = retry_countdown(
            self.request.retries, backoff["base"], backoff["cap"]
        )
        raise self.retry(exc=exc, countdown=countdown) from None
    return {"attempts": attempt, "retries": self.request.retries}


@shared_task(bind=True, name="redisops.tasks.record_payment")
def record_payment(
    self: Task,
    payment_id: str,
    account: str,
    amount: int,
    hold_seconds: float = 0,
    client: str | None = None,
) -> dict[str, object]:
    """Apply ``amount`` to ``account`` in the client's own ledger, once.

    Idempotent under redelivery: the ledger change and the payment's
    processed-once marker are one atomic Lua step (lua/record_payment.lua).
    The API passes ``client`` (the authenticated one), so a client only ever
    touches its own ledger. A ledger holds at most APP_LEDGER_MAX_ACCOUNTS
    accounts (a new one beyond that fails with LedgerFullError) and expires
    APP_LEDGER_TTL after its last payment, with the payments' markers.

    ``hold_seconds`` (not offered by the API): work after the effect, e.g. a
    receipt; a test kills the process there to force a real redelivery.
    """
    status, balance = run_script(
        app_redis(),
        "record_payment",
        keys=[payment_marker_key(client, payment_id), ledger_key(client)],
        args=[
            settings.APP_LEDGER_TTL,
            self.request.id or "-",
            account,
            amount,
            settings.APP_LEDGER_MAX_ACCOUNTS,
        ],
    )
    if status < 0:
        raise LedgerFullError(
            f"ledger of {client or '-'} holds {settings.APP_LEDGER_MAX_ACCOUNTS} "
            f"accounts; {account!r} is a new one"
        )
    if hold_seconds > 0:
        time.sleep(min(hold_seconds, 30.0))
    if not status:
        log.info("payment %s already recorded; nothing changed", payment_id)
    return {"applied": bool(status), "account": account, "balance": int(balance)}


@shared_task(bind=True, name="redisops.tasks.notify", max_retries=100)
def notify(self: Task, user_id: str) -> dict[str, object]:
    """Rate-limited across the whole fleet by our Redis limiter.

    Celery's ``rate_limit`` option is enforced per worker process pool: with N
    worker hosts the real rate is N times higher. This token bucket lives in
    Redis, so every worker shares it.
    """
    client = app_redis()
    limit, period = settings.APP_NOTIFY_RATE
    decision = TokenBucket(client, limit, period).hit("task:notify")
    if not decision.allowed:
        jitter = random.uniform(0, decision.retry_after / 4)  # noqa: S311 - not crypto
        raise self.retry(countdown=decision.retry_after + jitter)
    seconds, micros = client.time()
    client.rpush(NOTIFY_LOG_KEY, f"{seconds}.{micros:06d} {user_id}")
    client.ltrim(NOTIFY_LOG_KEY, -1000, -1)
    return {"user_id": user_id, "sent": True}


@shared_task(name="redisops.tasks.write_heartbeat", ignore_result=True)
def write_heartbeat() -> None:
    """Beat's proof of life, read by /readyz: Redis's own clock, so no host
    clock is compared with another."""
    client = app_redis()
    seconds, _ = client.time()
    client.set(HEARTBEAT_KEY, seconds, ex=max(settings.APP_HEARTBEAT_MAX_AGE * 10, 600))


def heartbeat_age(client: redis.Redis) -> float | None:
    """Seconds since beat's last heartbeat, on Redis's clock; None if never."""
    value = client.get(HEARTBEAT_KEY)
    if value is None:
        return None
    seconds, _ = client.time()
    return max(0.0, seconds - float(value))


def check_heartbeat(client: redis.Redis, max_age: float) -> float:
    """The heartbeat's age if fresh; HeartbeatError if missing or too old.
    One check for /readyz and `manage.py smoke`."""
    age = heartbeat_age(client)
    if age is None:
        raise HeartbeatError("no heartbeat from celery beat")
    if age > max_age:
        raise HeartbeatError(f"heartbeat {age:.0f}s old (max {max_age}s)")
    return age


@shared_task(name="redisops.tasks.trim_streams", ignore_result=True)
def trim_streams() -> dict[str, object]:
    """Keep the app's streams bounded (producers trim approximately too)."""
    client = app_redis()
    result = {
        "events": streams.trim(client, settings.APP_STREAM, settings.APP_STREAM_MAXLEN),
        "dlq": client.xtrim(
            streams.dlq_name(settings.APP_STREAM),
            maxlen=settings.APP_STREAM_DLQ_MAXLEN,
            approximate=True,
        ),
        "pubsub": client.xtrim(
            settings.APP_PUBSUB_RECORD_STREAM,
            maxlen=pubsub.RECORD_MAXLEN,
            approximate=True,
        ),
    }
    pubsub.listeners(client)  # also forgets long-gone listeners
    log.info("trimmed streams: %s", result)
    return result


@dataclass(frozen=True)
class ApiTask:
    """A task the API may enqueue.

    ``args``: the arguments a client may pass, with their types; nothing else
    (``hold_seconds``, ``client``) is accepted. ``per_client``: the API adds
    ``client=<authenticated client>``, which namespaces what the task writes.
    ``writes_app_data``: it stores data under app:*, so the API refuses it
    above the storage budget (redisops.storage_budget).
    """

    task: Task
    args: dict[str, type]
    per_client: bool = False
    writes_app_data: bool = False


# What the API may enqueue. write_heartbeat and trim_streams (beat's) are not
# here, so no API call reaches them. flaky is public: its cost per call is
# bounded (at most 6 runs, backoff capped, one counter per client and key
# that expires) and it is the demo of retries with backoff.
API_TASKS: dict[str, ApiTask] = {
    "add": ApiTask(add, {"x": int, "y": int}),
    "heavy_checksum": ApiTask(heavy_checksum, {"size_kib": int, "rounds": int}),
    "flaky": ApiTask(
        flaky, {"key": str, "failures": int}, per_client=True, writes_app_data=True
    ),
    "record_payment": ApiTask(
        record_payment,
        {"payment_id": str, "account": str, "amount": int},
        per_client=True,
        writes_app_data=True,
    ),
    "notify": ApiTask(notify, {"user_id": str}),
}
