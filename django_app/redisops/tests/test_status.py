"""`manage.py status` against the test stack: a real worker, broker and Redis."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from io import StringIO
from typing import Any

import pytest
import redis
from django.conf import settings
from django.core.management import CommandError, call_command

from redisops import redis_acl, tasks
from redisops.streams import progress
from redisops.tests.conftest import APP_DIR, subprocess_env, wait_for

pytestmark = pytest.mark.usefixtures("celery_worker")
app = tasks.add.app
WORKER = f"test@{socket.gethostname()}"  # conftest's worker: --hostname test@%h
KEYS = {"queues", "unacked", "workers", "stream", "heartbeat_age", "heartbeat_max_age"}


def status_json(*args: str) -> dict[str, Any]:
    out = StringIO()
    call_command("status", "--json", *args, stdout=out)
    return json.loads(out.getvalue())


def status_process(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - manage.py status, no shell
        [sys.executable, "manage.py", "status", *args],
        cwd=APP_DIR,
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_json_has_exactly_the_documented_keys() -> None:
    status = status_json()
    assert set(status) == KEYS
    assert set(status["queues"]) == {q.name for q in settings.CELERY_TASK_QUEUES}
    assert all(isinstance(n, int) for n in status["queues"].values())
    assert isinstance(status["unacked"], int)
    assert status["workers"] == sorted(status["workers"])
    assert status["heartbeat_max_age"] == settings.APP_HEARTBEAT_MAX_AGE


def test_queue_counts_move_while_no_worker_consumes_the_queue(
    admin_redis: redis.Redis,
) -> None:
    """The worker stops consuming `heavy`: tasks sent there wait, and status
    counts them, priority sub-queues included; once it consumes again they
    run and the count drops to 0."""
    reply = app.control.cancel_consumer("heavy", destination=[WORKER], reply=True)
    assert reply, "the test worker did not answer cancel_consumer"
    try:
        assert status_json()["queues"]["heavy"] == 0
        results = [tasks.heavy_checksum.delay(1, 1) for _ in range(2)]
        # kombu keeps a priority's messages in a list of their own.
        results.append(tasks.heavy_checksum.apply_async((1, 1), priority=5))
        assert admin_redis.llen(f"{redis_acl.BROKER_PREFIX}heavy\x06\x163") == 1
        assert status_json()["queues"]["heavy"] == 3
    finally:
        app.control.add_consumer("heavy", destination=[WORKER], reply=True)
    for result in results:
        assert len(result.get(timeout=20)) == 64
    assert status_json()["queues"]["heavy"] == 0


def test_unacked_counts_tasks_a_worker_holds() -> None:
    """A countdown task is reserved (delivered, not acked) until it runs."""
    before = status_json()["unacked"]
    result = tasks.add.apply_async((1, 2), countdown=2)
    wait_for(lambda: status_json()["unacked"] > before, what="the reserved task")
    assert result.get(timeout=15) == 3
    wait_for(lambda: status_json()["unacked"] == before, what="the ack")


def test_workers_lists_the_worker_that_answers_a_ping() -> None:
    assert WORKER in status_json()["workers"]


def test_ping_timeout_is_how_long_workers_may_take_to_answer() -> None:
    started = time.monotonic()
    assert WORKER in status_json("--ping-timeout", "2.5")["workers"]
    assert time.monotonic() - started >= 2.5  # the default waits 1 s
    with pytest.raises(CommandError, match="seconds > 0"):
        status_json("--ping-timeout", "0")


def test_heartbeat_age_and_stream_progress(r: redis.Redis) -> None:
    r.delete(tasks.HEARTBEAT_KEY)
    assert status_json()["heartbeat_age"] is None
    tasks.write_heartbeat()
    status = status_json()
    assert 0 <= status["heartbeat_age"] < 5
    assert status["stream"] == progress(
        r, settings.APP_STREAM, settings.APP_STREAM_GROUP
    )


def test_summary_is_one_line_per_area(r: redis.Redis) -> None:
    r.delete(tasks.HEARTBEAT_KEY)
    out = StringIO()
    call_command("status", stdout=out)
    lines = out.getvalue().splitlines()
    assert [line.split()[0] for line in lines] == [
        "queues",
        "workers",
        "stream",
        "dead-letter",
        "beat",
    ]
    assert lines[0].startswith("queues      default ")
    assert "reserved by workers (unacked)" in lines[0]
    assert WORKER in lines[1]
    assert lines[4] == (
        f"beat        heartbeat MISSING (max {settings.APP_HEARTBEAT_MAX_AGE}s): "
        "docs/runbooks/celery-beat.md"
    )


@pytest.mark.parametrize("as_json", [False, True], ids=["summary", "json"])
def test_redis_down_exits_1_with_one_line_naming_it(as_json: bool) -> None:
    """Every Redis URL at port 1 (nothing listens): no traceback."""
    result = status_process(
        *(["--json"] if as_json else []), REDISOPS_TEST_REDIS_PORT="1"
    )
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("CommandError: status: redis (REDIS_APP_URL) unavailable: ")
    assert "Traceback" not in result.stderr
    if as_json:
        assert json.loads(result.stdout) == {"error": line.split("status: ", 1)[1]}
    else:
        assert result.stdout == ""


def test_broker_down_exits_1_naming_the_broker() -> None:
    """The app's Redis answers, the broker does not."""
    result = status_process(
        "--json",
        REDISOPS_TEST_REDIS_PORT="1",
        REDIS_TEST_APP_URL=settings.REDIS_APP_URL,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    [line] = result.stderr.splitlines()
    assert "status: broker (REDIS_BROKER_URL) unavailable: OperationalError" in line
    assert "Traceback" not in result.stderr
    assert set(json.loads(result.stdout)) == {"error"}
