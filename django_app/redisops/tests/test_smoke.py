"""`manage.py smoke` against the test stack: passes when all runs, names what fails."""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from django.conf import settings

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
    for check in CHECKS:
        assert f"ok   {check}:" in result.stdout
    assert "monitor" in result.stdout  # every configured user logged in
    assert "ok   budget: used_memory " in result.stdout
    assert "app data refused above 60 %" in result.stdout
    assert "ok   api: token file lists 2 client(s); in-process: 401 without a " in (
        result.stdout
    )


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
    result = smoke("--skip", "worker,stream,database,api")
    assert result.returncode == 1
    assert "FAIL beat: " in result.stderr
    assert "FAIL listener: " in result.stderr
    assert "smoke failed: beat, listener" in result.stderr
    assert "ok   ratelimit" in result.stdout


def test_smoke_refuses_unknown_checks() -> None:
    result = smoke("--skip", "everything")
    assert result.returncode != 0
    assert "unknown check" in result.stderr


def only(check: str) -> str:
    return ",".join(c for c in CHECKS if c != check)


def test_smoke_api_check_names_a_bad_token_file_line(tmp_path: Path) -> None:
    """The real token file is read first: a bad one fails the check, naming
    the line and never its text."""
    token = secrets.token_urlsafe(32)
    bad = tmp_path / "api-tokens"
    bad.write_text(f"# header\nalice {token}\n")
    result = smoke("--skip", only("api"), APP_API_TOKENS_FILE=str(bad))
    assert result.returncode == 1
    assert f"FAIL api: TokenFileError: APP_API_TOKENS_FILE {bad} line 2: " in (
        result.stderr
    )
    assert token not in result.stdout + result.stderr


@pytest.mark.usefixtures("celery_worker")
def test_smoke_api_check_leaves_no_lasting_trace(admin_redis: redis.Redis) -> None:
    """Its throwaway clients exist only in a temporary file: the real file is
    unchanged, and what names them in Redis expires (its task's owner
    record; its rate-limit keys live no longer than a period)."""
    before = Path(settings.APP_API_TOKENS_FILE).read_text()
    result = smoke("--skip", only("api"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert Path(settings.APP_API_TOKENS_FILE).read_text() == before
    owned = [
        key
        for key in admin_redis.scan_iter(match="app:task:owner:*", count=1000)
        if (admin_redis.get(key) or "").startswith("smoke-")
    ]
    assert owned
    assert all(admin_redis.ttl(key) > 0 for key in owned)


def test_smoke_budget_check_fails_above_the_budget(admin_redis: redis.Redis) -> None:
    original = admin_redis.config_get("maxmemory")["maxmemory"]
    used = int(admin_redis.info("memory")["used_memory"])
    admin_redis.config_set("maxmemory", int(used / 0.75))
    try:
        result = smoke("--skip", only("budget"))
    finally:
        admin_redis.config_set("maxmemory", original)
    assert result.returncode == 1
    assert "FAIL budget: StorageBudgetExceeded: refused smoke: used_memory " in (
        result.stderr
    )
