"""Which API client enqueued a task: only that client may read its result.

The owner is written before the task is sent (so no result can exist without
its owner) under ``app:task:owner:<task id>``, for as long as the result can
exist: CELERY_RESULT_EXPIRES after the task ran, which is at most
APP_MAX_COUNTDOWN + CELERY_TASK_TIME_LIMIT after it was enqueued when workers
keep up. A task that waited longer in a backlog may outlive its owner record:
then its result answers 404 like any other (fails closed).
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from celery import Task
from django.conf import settings
from redis.exceptions import RedisError

from . import redis_acl
from .clients import app_redis
from .restarts import ride_out_restart

OWNER_PREFIX = f"{redis_acl.APP_PREFIX}task:owner:"


def owner_key(task_id: str) -> str:
    return f"{OWNER_PREFIX}{task_id}"


def owner_ttl() -> int:
    return (
        settings.CELERY_RESULT_EXPIRES
        + settings.APP_MAX_COUNTDOWN
        + settings.CELERY_TASK_TIME_LIMIT
    )


def enqueue_owned(
    client: str, task: Task, kwargs: dict[str, Any], countdown: int | None = None
) -> str:
    """Send ``task`` on behalf of API client ``client``; its id. What the API
    does, and what a shell uses to enqueue a task a client may then read."""
    task_id = str(uuid.uuid4())
    redis = app_redis()
    # Waits out a Redis restart as the publish below does.
    ride_out_restart(lambda: redis.set(owner_key(task_id), client, ex=owner_ttl()))
    try:
        task.apply_async(kwargs=kwargs, countdown=countdown, task_id=task_id)
    except Exception:
        with contextlib.suppress(RedisError):  # never sent: nothing to own
            redis.delete(owner_key(task_id))
        raise
    return task_id


def owner_of(task_id: str) -> str | None:
    return app_redis().get(owner_key(task_id))
