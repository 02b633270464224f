"""Tasks through a real worker: routing, retries, idempotence, fleet-wide limit."""

from __future__ import annotations

import itertools
import os
import re
import signal
import uuid

import pytest
import redis
from django.conf import settings

from redisops import tasks
from redisops.tests.conftest import Proc, wait_for

pytestmark = pytest.mark.usefixtures("celery_worker")
app = tasks.add.app  # the app the tasks are bound to (config.celery_app)

# One event per line: the formatter of config.settings.base LOGGING.
LOG_LINE_RE = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) "
    r"\S+ pid=\d+ task=\S+ .*"
)


def task_log(worker: Proc, task_id: str) -> list[str]:
    return [line for line in worker.output.splitlines() if task_id in line]


def retry_countdowns(worker: Proc, task_id: str) -> list[float]:
    """The countdowns Celery logged for this task's retries ("Retry in Xs")."""
    return [
        float(m.group(1))
        for line in task_log(worker, task_id)
        if (m := re.search(r"retry: Retry in ([0-9.]+)s", line))
    ]


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
    uid: str, r: redis.Redis, celery_worker: Proc
) -> None:
    result = tasks.flaky.delay(uid, -1)  # ValueError after the attempt is counted
    with pytest.raises(ValueError, match="failures must be"):
        result.get(timeout=10)
    assert result.state == "FAILURE"
    assert app.backend.get_task_meta(result.id)["retries"] == 0
    assert r.get(f"{tasks.TASK_KEY_PREFIX}flaky:{uid}") == "1"  # ran exactly once
    wait_for(
        lambda: any(
            "raised unexpected" in x for x in task_log(celery_worker, result.id)
        )
    )
    lines = task_log(celery_worker, result.id)
    assert sum(" received" in x for x in lines) == 1
    assert not any("retry:" in x for x in lines)


def test_retry_backoff_grows_stays_under_the_cap_and_varies(
    celery_worker: Proc,
) -> None:
    """From the worker's log: the countdowns of real retries. Test settings:
    base 0.2 s, cap 1.0 s; retry n waits within [c/2, c], c = min(cap, base*2**n)."""
    base, cap = settings.APP_RETRY_BACKOFF["base"], settings.APP_RETRY_BACKOFF["cap"]
    results = [tasks.flaky.delay(uuid.uuid4().hex, 5) for _ in range(2)]
    for result in results:
        assert result.get(timeout=30) == {"attempts": 6, "retries": 5}
    runs = [retry_countdowns(celery_worker, result.id) for result in results]
    for countdowns in runs:
        assert len(countdowns) == 5
        for n, countdown in enumerate(countdowns):
            ceiling = min(cap, base * 2**n)
            assert ceiling / 2 <= countdown <= ceiling <= cap
        assert countdowns[0] < countdowns[1] < countdowns[2]  # grows until the cap
        assert max(countdowns) <= cap
    assert runs[0] != runs[1]  # jitter: two tasks never wait alike


def test_retry_countdown_policy() -> None:
    samples = [
        tasks.retry_countdown(n, 1.0, 30.0) for n in range(10) for _ in range(50)
    ]
    assert max(samples) <= 30.0
    assert len(set(samples)) > 400  # jittered
    assert min(tasks.retry_countdown(9, 1.0, 30.0) for _ in range(50)) >= 15.0


def test_attempt_counter_expiry_is_set_once(r: redis.Redis, uid: str) -> None:
    """KNOWN-MISTAKES: INCR + EXPIRE on every call pushes the expiry forward."""
    counter = f"{tasks.TASK_KEY_PREFIX}flaky:{uid}"
    assert tasks.count_attempt(r, counter) == 1
    assert 0 < r.ttl(counter) <= tasks.FLAKY_COUNTER_TTL
    r.expire(counter, 100)  # time has passed
    assert tasks.count_attempt(r, counter) == 2
    assert r.ttl(counter) <= 100  # not pushed forward


def test_idempotent_task_applies_a_redelivered_payment_once(
    uid: str, r: redis.Redis
) -> None:
    account = f"acct-{uid}"
    payment = f"pay-{uid}"
    # Same payment enqueued three times (as a duplicate publish would).
    first = tasks.record_payment.delay(payment, account, 250).get(timeout=10)
    again = [
        tasks.record_payment.delay(payment, account, 250).get(timeout=10)
        for _ in range(2)
    ]
    assert first["applied"] is True
    assert [a["applied"] for a in again] == [False, False]
    assert int(r.hget(tasks.LEDGER_KEY, account)) == 250


def test_payment_redelivered_after_its_worker_process_was_killed_applies_once(
    uid: str, r: redis.Redis, celery_worker: Proc
) -> None:
    """The pool process is SIGKILLed after the ledger changed, before the task
    returned (so before the late ack). reject_on_worker_lost requeues the
    message; the broker delivers it again and the second run changes nothing."""
    account = f"acct-{uid}"
    result = tasks.record_payment.delay(f"pay-{uid}", account, 70, hold_seconds=2)
    wait_for(lambda: r.hget(tasks.LEDGER_KEY, account), what="first run's effect")
    pid = wait_for(
        lambda: result.state == "STARTED" and (result.info or {}).get("pid"),
        what="the pool process's pid",
    )
    assert pid != celery_worker.popen.pid
    os.kill(pid, signal.SIGKILL)
    second = result.get(timeout=30)
    assert second["applied"] is False  # the redelivered run found the marker
    assert int(r.hget(tasks.LEDGER_KEY, account)) == 70
    lines = task_log(celery_worker, result.id)
    assert sum(" received" in x for x in lines) == 2  # delivered twice
    assert "WorkerLostError" in celery_worker.output


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
    with pytest.raises(tasks.HeartbeatError, match="no heartbeat"):
        tasks.check_heartbeat(r, 60)
    tasks.write_heartbeat.delay()
    wait_for(lambda: r.exists(tasks.HEARTBEAT_KEY), what="heartbeat")
    age = tasks.heartbeat_age(r)
    assert age is not None
    assert 0 <= age < 5
    assert tasks.check_heartbeat(r, 60) == pytest.approx(age, abs=1)
    r.set(tasks.HEARTBEAT_KEY, int(r.time()[0]) - 100)
    with pytest.raises(tasks.HeartbeatError, match="old"):
        tasks.check_heartbeat(r, 60)


def test_worker_logs_one_line_per_event_with_task_ids(celery_worker: Proc) -> None:
    ok = tasks.flaky.delay("log-check", 0)
    ok.get(timeout=10)
    failed = tasks.flaky.delay(uuid.uuid4().hex, -1)  # logs a traceback
    with pytest.raises(ValueError, match="failures must be"):
        failed.get(timeout=10)
    wait_for(lambda: f"task={ok.id}" in celery_worker.output, what="task id in log")
    wait_for(
        lambda: any(
            "raised unexpected" in x for x in task_log(celery_worker, failed.id)
        ),
        what="failure in log",
    )
    lines = celery_worker.output.splitlines()
    first_event = next(i for i, line in enumerate(lines) if LOG_LINE_RE.fullmatch(line))
    events = lines[first_event:]  # before: Celery's startup banner (stdout)
    assert [line for line in events if not LOG_LINE_RE.fullmatch(line)] == []
    [failure] = [x for x in task_log(celery_worker, failed.id) if "raised" in x]
    assert "Traceback" in failure  # the whole traceback, on this one line
    assert f"task={failed.id}" in failure


def test_notify_keeps_at_most_1000_log_entries(r: redis.Redis) -> None:
    r.delete(tasks.NOTIFY_LOG_KEY)
    r.rpush(tasks.NOTIFY_LOG_KEY, *(f"0.0 old-{i}" for i in range(1000)))
    assert tasks.notify.delay("newest").get(timeout=30)["sent"] is True
    assert r.llen(tasks.NOTIFY_LOG_KEY) == 1000
    assert r.lindex(tasks.NOTIFY_LOG_KEY, -1).endswith(" newest")
    assert r.lindex(tasks.NOTIFY_LOG_KEY, 0) == "0.0 old-1"
