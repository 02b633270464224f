"""Ride out a Redis restart: a call that lost its connection is retried as
Celery retries a task's publish (CELERY_TASK_PUBLISH_RETRY_POLICY, about
4.5 s), so an API request during a restart waits instead of failing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

T = TypeVar("T")


def ride_out_restart(call: Callable[[], T]) -> T:
    """call(), retried on a lost connection; the last error once the policy's
    retries are spent."""
    policy = settings.CELERY_TASK_PUBLISH_RETRY_POLICY
    for attempt in range(policy["max_retries"]):
        try:
            return call()
        except (RedisConnectionError, RedisTimeoutError):
            step = policy["interval_start"] + policy["interval_step"] * attempt
            time.sleep(min(step, policy["interval_max"]))
    return call()
