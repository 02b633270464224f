"""The app's state at a glance: Celery queues and workers, the stream's
progress, beat's heartbeat. Read-only. Used by ``manage.py status`` (and
through it by playbooks/ops/status.yml and the worker-restart playbook).

Only public kombu/Celery API: ``queue_declare`` for a queue's length (its
priority sub-queues included), ``control.ping`` for the workers. The one
number kombu has no API for, messages reserved by workers, is the length of
the transport's documented ``unacked_key`` hash.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import redis
from celery import Celery

from . import tasks
from .streams import progress


def broker_counts(
    app: Celery, queue_names: Iterable[str]
) -> tuple[dict[str, int], int]:
    """(messages waiting per queue, messages delivered to workers and not yet
    acked: prefetched, running, or held for their countdown/ETA)."""
    with app.connection_for_read() as conn:
        # Fail now rather than retry: status must answer while paging.
        conn.ensure_connection(max_retries=1)
        channel = conn.default_channel
        # Not passive=True: kombu's Redis transport checks a queue's existence
        # with EXISTS without its global_keyprefix (NOPERM under our ACL, and
        # the wrong key). A non-passive declare writes nothing on this
        # transport and returns the LLEN sum of the queue's priority lists.
        waiting = {
            name: int(channel.queue_declare(name).message_count) for name in queue_names
        }
        unacked = int(channel.client.hlen(channel.unacked_key))
    return waiting, unacked


def answering_workers(app: Celery, timeout: float) -> list[str]:
    """Node names (``worker@host``) of the workers that answered a ping."""
    replies = app.control.ping(timeout=timeout)
    return sorted(name for reply in replies for name in reply)


def collect(
    app: Celery,
    client: redis.Redis,
    *,
    queue_names: Iterable[str],
    stream: str,
    group: str,
    heartbeat_max_age: float,
    ping_timeout: float,
) -> dict[str, Any]:
    """The status as the JSON of ``manage.py status --json`` (README: status).
    Raises redis or kombu errors when Redis or the broker is down."""
    stream_progress = progress(client, stream, group)
    age = tasks.heartbeat_age(client)
    waiting, unacked = broker_counts(app, queue_names)
    return {
        "queues": waiting,
        "unacked": unacked,
        "workers": answering_workers(app, ping_timeout),
        "stream": stream_progress,
        "heartbeat_age": age,
        "heartbeat_max_age": heartbeat_max_age,
    }


def summary(status: dict[str, Any]) -> list[str]:
    """One line per area, with the runbook to open when it looks wrong."""
    queues = ", ".join(f"{name} {count}" for name, count in status["queues"].items())
    st = status["stream"]
    age, max_age = status["heartbeat_age"], status["heartbeat_max_age"]
    beat = "heartbeat MISSING" if age is None else f"heartbeat {age:.0f}s old"
    beat += f" (max {max_age}s)"
    if age is None or age > max_age:
        beat += ": docs/runbooks/celery-beat.md"
    dead = st["dead_letter_length"]
    return [
        f"queues      {queues} waiting; {status['unacked']} reserved by workers "
        "(unacked)",
        "workers     "
        + (
            ", ".join(status["workers"])
            or "NONE answers a ping: docs/runbooks/celery-backlog.md"
        ),
        f"stream      {st['stream']} group {st['group']}: length {st['length']}, "
        f"lag {_known(st.get('lag'))}, pending {_known(st.get('pending'))}, "
        f"consumers {st.get('consumers') or 0}",
        f"dead-letter {dead} entries now (dead-lettered "
        f"{st.get('dead_lettered', 0)}, replayed {st.get('replayed', 0)} in all)"
        + (": docs/runbooks/stream-lag-dlq.md" if dead else ""),
        f"beat        {beat}",
    ]


def _known(value: object) -> object:
    """'?' for what Redis did not say (no group yet; lag before Redis 7.0)."""
    return "?" if value is None else value
