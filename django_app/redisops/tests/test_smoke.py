"""`manage.py smoke` against the test stack: passes when all runs, names what fails."""

from __future__ import annotations

import subprocess
import sys

import pytest

from redisops import pubsub, tasks
from redisops.clients import app_redis
from redisops.management.commands.smoke import CHECKS
from redisops.tests.conftest import APP_DIR, manage, subprocess_env, wait_for


def smoke(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - manage.py smoke, no shell
        [sys.executable, "manage.py", "smoke", "--timeout", "15", *args],
        cwd=APP_DIR,
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.django_db
@pytest.mark.usefixtures("celery_worker")
def test_smoke_passes_on_a_running_stack(spawn) -> None:
    r = app_redis()
    tasks.write_heartbeat()
    spawn(manage("pubsub_listener", "--name", "smoke-listener"), name="listener")
    spawn(manage("stream_consumer", "--consumer", "smoke-consumer"), name="consumer")
    wait_for(
        lambda: "smoke-listener" in pubsub.listeners(r), timeout=20, what="listener"
    )
    result = smoke()
    assert result.returncode == 0, result.stdout + result.stderr
    for check in (
        "redis",
        "database",
        "worker",
        "beat",
        "pubsub",
        "listener",
        "stream",
        "ratelimit",
    ):
        assert f"ok   {check}:" in result.stdout
    assert "monitor" in result.stdout  # every configured user logged in


@pytest.mark.parametrize("demo", ["false", "true"], ids=["default", "demo-on"])
def test_smoke_stream_check_passes_with_and_without_demo_rules(
    spawn, demo: str
) -> None:
    """smoke's stream entry has none of the demo fields: the consumer service
    applies it whether APP_STREAM_DEMO_FAILURES is on or off."""
    spawn(
        manage("stream_consumer", "--consumer", f"smoke-demo-{demo}"),
        name="consumer",
        APP_STREAM_DEMO_FAILURES=demo,
    )
    others = ",".join(c for c in CHECKS if c != "stream")
    result = smoke("--skip", others, APP_STREAM_DEMO_FAILURES=demo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok   stream: entry " in result.stdout


def test_smoke_fails_naming_what_is_missing() -> None:
    app_redis().delete(tasks.HEARTBEAT_KEY)
    result = smoke("--skip", "worker,stream,database")
    assert result.returncode == 1
    assert "FAIL beat: " in result.stderr
    assert "FAIL listener: " in result.stderr
    assert "smoke failed: beat, listener" in result.stderr
    assert "ok   ratelimit" in result.stdout


def test_smoke_refuses_unknown_checks() -> None:
    result = smoke("--skip", "everything")
    assert result.returncode != 0
    assert "unknown check" in result.stderr
