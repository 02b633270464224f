"""Fixtures: a real redis-server with our ACL users, and a real Celery worker.

No fakeredis and no task_always_eager: the worker is a `celery worker`
subprocess on the test broker, so serialization, routing, acks and retries
are the real ones.
"""

from __future__ import annotations

import gc
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from django.test import Client

from redisops.clients import app_redis
from redisops.tests.redis_proc import RedisProcess, celery_argv, worker_argv

APP_DIR = Path(__file__).resolve().parents[2]


def wait_for(
    check: Callable[[], Any],
    timeout: float = 10.0,
    interval: float = 0.05,
    what: str = "",
) -> Any:
    """Poll ``check`` until it returns something truthy, and return that.

    An AssertionError from ``check`` means "not yet" (kept as the last value,
    so a check may assert); any other exception propagates at once (a bug in
    the check is not a timeout). At the deadline: AssertionError naming the
    timeout and the last value. Shared with the Molecule test library.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            last: Any = check()
        except AssertionError as exc:
            last = exc
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what or check}; "
                f"last value: {last!r}"
            )
        time.sleep(interval)


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(DJANGO_SETTINGS_MODULE="config.settings.test", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def manage(*args: str) -> list[str]:
    return [sys.executable, str(APP_DIR / "manage.py"), *args]


class Proc:
    """A subprocess whose output goes to a log file we can read in asserts."""

    def __init__(self, cmd: list[str], log_path: Path, env: dict[str, str]) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.popen = subprocess.Popen(  # noqa: S603 - argv list from the tests, no shell
            cmd, cwd=APP_DIR, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout=timeout)

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()
        return self.popen.returncode


@pytest.fixture(scope="session")
def tmp_root() -> Iterator[Path]:
    """config.settings.test's directory; removed at the end if it made it."""
    root = Path(settings.REDIS_TEST_DIR)
    yield root
    if settings.REDIS_TEST_DIR_OWNED:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(autouse=True)
def _closed_limiter_breaker() -> Iterator[None]:
    """Each test starts with the limiter's circuit breaker closed."""
    from redisops.middleware import LIMITER_BREAKER

    LIMITER_BREAKER.reset()
    yield
    LIMITER_BREAKER.reset()


@pytest.fixture(scope="session", autouse=True)
def redis_server(tmp_root: Path) -> Iterator[RedisProcess]:
    """The session's redis-server on the port config.settings.test chose."""
    server = RedisProcess(settings.REDIS_TEST_PORT, tmp_root / "redis", maxmemory="1gb")
    server.start()
    yield server
    _close_celery_result_consumer()
    server.stop()


def _close_celery_result_consumer() -> None:
    """Let AsyncResults finish while Redis is up; otherwise their __del__
    retries a reconnect to the stopped server for minutes."""
    from redisops.tasks import add

    app = add.app  # the app the tasks are bound to
    gc.collect()
    consumer = getattr(app.backend, "result_consumer", None)
    if consumer is not None and getattr(consumer, "_pubsub", None) is not None:
        consumer.stop()
        consumer._pubsub = None


@pytest.fixture(scope="session", autouse=True)
def api_token_file(tmp_root: Path) -> Path:
    """The session's token file (APP_API_TOKENS_FILE of the test settings):
    clients alice (two tokens, as during a rotation) and bob."""
    from redisops.tests.api_clients import CLIENTS, write_token_file

    path = Path(settings.APP_API_TOKENS_FILE)
    write_token_file(path, CLIENTS)
    return path


@pytest.fixture
def alice() -> Client:
    """A test client authenticated as alice."""
    from redisops.tests.api_clients import ALICE, api_client

    return api_client(ALICE)


@pytest.fixture
def bob() -> Client:
    """A test client authenticated as bob."""
    from redisops.tests.api_clients import BOB, api_client

    return api_client(BOB)


@pytest.fixture(scope="session")
def admin_redis(redis_server: RedisProcess) -> redis.Redis:
    return redis.Redis.from_url(redis_server.url(), decode_responses=True)


@pytest.fixture
def r(redis_server: RedisProcess) -> redis.Redis:
    """The app's own client (ACL user app_data), as the code uses it."""
    return app_redis()


@pytest.fixture
def uid() -> str:
    """A fresh id for this test's keys (tests share one server)."""
    return uuid.uuid4().hex[:12]


@pytest.fixture
def stream(uid: str) -> str:
    """A stream of this test's own (the app_data user may use app:*)."""
    return f"app:stream:test-{uid}"


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    """Start subprocesses; all are stopped (TERM, then KILL) after the test."""
    procs: list[Proc] = []

    def _spawn(cmd: list[str], name: str = "proc", **env: str) -> Proc:
        proc = Proc(cmd, tmp_path / f"{name}-{len(procs)}.log", subprocess_env(**env))
        procs.append(proc)
        return proc

    yield _spawn
    for proc in procs:
        proc.stop()


@pytest.fixture(scope="session")
def celery_worker(redis_server: RedisProcess, tmp_root: Path) -> Iterator[Proc]:
    """One real worker (prefork, 2 processes) on queues default and heavy."""
    from redisops import tasks

    log = tmp_root / "celery-worker.log"
    proc = Proc(
        worker_argv("INFO", "--hostname", "test@%h"),
        log,
        subprocess_env(),
    )
    try:
        assert tasks.add.delay(1, 1).get(timeout=30) == 2, proc.output
    except Exception:
        proc.stop()
        raise RuntimeError(
            f"celery worker did not answer:\n{proc.output[-4000:]}"
        ) from None
    yield proc
    proc.stop(timeout=30)


@pytest.fixture
def celery_beat(celery_worker: Proc, tmp_path: Path) -> Iterator[Proc]:
    """A real `celery beat` (its own process, as in production) with a 1 s
    heartbeat and its schedule file in tmp; ready once its first heartbeat,
    written by the worker, is in Redis."""
    from redisops import tasks

    client = app_redis()
    client.delete(tasks.HEARTBEAT_KEY)
    proc = Proc(
        celery_argv(
            "beat",
            "--loglevel",
            "INFO",
            "--schedule",
            str(tmp_path / "celerybeat-schedule"),
            "--pidfile",
            str(tmp_path / "celerybeat.pid"),
        ),
        tmp_path / "celery-beat.log",
        subprocess_env(APP_HEARTBEAT_INTERVAL="1", APP_HEARTBEAT_MAX_AGE="3"),
    )
    try:
        wait_for(
            lambda: client.exists(tasks.HEARTBEAT_KEY) or proc.popen.poll() is not None,
            timeout=30,
            what="celery beat's first heartbeat",
        )
        if proc.popen.poll() is not None:
            pytest.fail(f"celery beat exited:\n{proc.output[-4000:]}")
        yield proc
    finally:
        proc.stop()
