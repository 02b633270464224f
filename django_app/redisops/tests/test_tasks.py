"""Tasks through a real worker: routing, retries, idempotence, fleet-wide limit."""

from __future__ import annotations

import itertools

import pytest
import redis
from django.conf import settings

from config.celery_app import app
from redisops import tasks
from redisops.tests.conftest import Proc, wait_for

pytestmark = pytest.mark.usefixtures("celery_worker")


def test_simple_task_round_trip() -> None:
    assert tasks.add.delay(2, 3).get(timeout=10) == 5


def test_heavy_task_runs_from_the_heavy_queue(celery_worker: Proc) -> None:
    result = tasks.heavy_checksum.delay(1, 2)
    assert len(result.get(timeout=20)) == 64
    meta = app.backend.get_task_meta(result.id)
    assert meta["queue"] == "heavy"


def test_retrying_task_retries_expected_errors_then_succeeds(uid: str) -> None:
    result = tasks.flaky.delay(uid, 2).get(timeout=30)
    assert result == {"attempts": 3, "retries": 2}


def test_retrying_task_does_not_retry_unexpected_errors(
    uid: str, r: redis.Redis
) -> None:
    result = tasks.flaky.delay(uid, -1)
    with pytest.raises(ValueError, match="failures must be"):
        result.get(timeout=10)
    assert result.state == "FAILURE"
    assert r.get(f"{tasks.TASK_KEY_PREFIX}flaky:{uid}") is None  # ran once, no retry


def test_retry_policy_has_backoff_jitter_and_cap() -> None:
    task = app.tasks["redisops.tasks.flaky"]
    assert task.retry_backoff
    assert task.retry_jitter
    assert task.retry_backoff_max == 30
    assert task.max_retries == 5
    assert Exception not in task.autoretry_for


def test_idempotent_task_applies_a_redelivered_payment_once(
    uid: str, r: redis.Redis
) -> None:
    account = f"acct-{uid}"
    payment = f"pay-{uid}"
    # Same payment delivered three times (as a redelivery after a crash would).
    first = tasks.record_payment.delay(payment, account, 250).get(timeout=10)
    again = [
        tasks.record_payment.delay(payment, account, 250).get(timeout=10)
        for _ in range(2)
    ]
    assert first["applied"] is True
    assert [a["applied"] for a in again] == [False, False]
    assert int(r.hget(tasks.LEDGER_KEY, account)) == 250


def test_fleet_wide_rate_limit_spaces_tasks(r: redis.Redis) -> None:
    limit, period = settings.APP_NOTIFY_RATE  # test settings: 3 per second
    r.delete(tasks.NOTIFY_LOG_KEY, "app:rl:gcra:task:notify")
    results = [tasks.notify.delay(f"user-{i}") for i in range(3 * limit)]
    for result in results:
        assert result.get(timeout=30)["sent"] is True
    times = sorted(
        float(line.split()[0]) for line in r.lrange(tasks.NOTIFY_LOG_KEY, 0, -1)
    )
    assert len(times) == 3 * limit
    # GCRA: at most `limit` at once plus `limit` per `period` after that.
    for i, j in itertools.combinations(range(len(times)), 2):
        admitted = j - i + 1
        assert admitted <= limit + limit * (times[j] - times[i]) / period + 1e-6
    assert times[-1] - times[0] >= (2 * limit - 1) * period / limit - 0.05


def test_heartbeat_task_writes_what_readyz_reads(r: redis.Redis) -> None:
    r.delete(tasks.HEARTBEAT_KEY)
    assert tasks.heartbeat_age(r) is None
    tasks.write_heartbeat.delay()
    age = wait_for(lambda: tasks.heartbeat_age(r) is not None, what="heartbeat")
    assert age
    assert tasks.heartbeat_age(r) < 5


def test_worker_logs_carry_task_ids(celery_worker: Proc) -> None:
    result = tasks.flaky.delay("log-check", 0)
    result.get(timeout=10)
    wait_for(lambda: f"task={result.id}" in celery_worker.output, what="task id in log")
    assert all(
        "\\n" not in line or "Traceback" in line
        for line in celery_worker.output.splitlines()
    )
