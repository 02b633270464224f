"""The broker's memory is protected from application data
(redisops.storage_budget): above APP_DATA_MEMORY_BUDGET percent of maxmemory
the API refuses stream entries, publishes and ledger payments with 503, while
tasks that store no app data still run. Against real redis-servers."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings as django_settings
from django.test import Client

from redisops import pubsub, storage_budget, tasks
from redisops.clients import app_redis
from redisops.storage_budget import (
    StorageBudgetExceeded,
    StorageBudgetUnavailable,
    check_storage_budget,
)
from redisops.tests.api_clients import ALICE, bearer
from redisops.tests.conftest import Proc, subprocess_env, wait_for
from redisops.tests.gunicorn_proc import start_gunicorn
from redisops.tests.redis_proc import RedisProcess, free_port, worker_argv

JSON = "application/json"
BUDGET_EXCEEDED = {"error": "storage budget exceeded"}


def post(client: Client, path: str, body: object) -> object:
    return client.post(path, data=json.dumps(body), content_type=JSON)


@pytest.fixture
def over_budget(admin_redis: redis.Redis) -> Iterator[None]:
    """The session's Redis with maxmemory set so that used_memory is about
    75 % of it: above the 60 % budget, well below maxmemory (nothing else is
    refused). The original maxmemory is restored after the test."""
    original = admin_redis.config_get("maxmemory")["maxmemory"]
    used = int(admin_redis.info("memory")["used_memory"])
    admin_redis.config_set("maxmemory", int(used / 0.75))
    storage_budget.forget_readings()
    try:
        yield
    finally:
        admin_redis.config_set("maxmemory", original)
        storage_budget.forget_readings()


@pytest.fixture(autouse=True)
def _fresh_readings() -> Iterator[None]:
    storage_budget.forget_readings()
    yield
    storage_budget.forget_readings()


def test_the_budget_is_a_share_of_maxmemory(admin_redis: redis.Redis) -> None:
    reading = check_storage_budget("test")
    info = admin_redis.info("memory")
    assert reading.maxmemory == int(info["maxmemory"]) == 1024**3
    assert 0 < reading.used <= reading.maxmemory * 60 // 100


def test_a_reading_well_below_the_budget_is_reused_for_a_second(
    admin_redis: redis.Redis,
) -> None:
    """One INFO per second per process while Redis is well below the budget:
    a change shows after at most CACHE_SECONDS (the clock is passed in,
    Redis is real)."""
    original = admin_redis.config_get("maxmemory")["maxmemory"]
    used = int(admin_redis.info("memory")["used_memory"])
    t0 = 1000.0
    try:
        assert check_storage_budget("first", now=t0).maxmemory == 1024**3
        admin_redis.config_set("maxmemory", int(used / 0.75))
        check_storage_budget("cached", now=t0 + 0.9)  # the reading of t0
        with pytest.raises(StorageBudgetExceeded) as refused:
            check_storage_budget("POST /api/stream for alice", now=t0 + 1.0)
        assert str(refused.value).startswith(
            "refused POST /api/stream for alice: used_memory "
        )
        assert "(60% of maxmemory" in str(refused.value)
    finally:
        admin_redis.config_set("maxmemory", original)


def test_near_the_budget_every_write_reads_again(admin_redis: redis.Redis) -> None:
    """Within NEAR_SHARE of the budget a reading is not reused: over it, the
    next check sees memory freed at once."""
    original = admin_redis.config_get("maxmemory")["maxmemory"]
    used = int(admin_redis.info("memory")["used_memory"])
    t0 = 2000.0
    try:
        # used at 57 % of maxmemory: below the 60 % budget, above 90 % of it
        admin_redis.config_set("maxmemory", int(used / 0.57))
        check_storage_budget("near", now=t0)
        admin_redis.config_set("maxmemory", int(used / 0.75))
        with pytest.raises(StorageBudgetExceeded):
            check_storage_budget("over", now=t0 + 0.1)
        admin_redis.config_set("maxmemory", original)
        assert check_storage_budget("freed", now=t0 + 0.2).maxmemory == 1024**3
    finally:
        admin_redis.config_set("maxmemory", original)


def test_an_unreadable_budget_refuses(settings) -> None:
    settings.REDIS_URLS = {
        **settings.REDIS_URLS,
        "REDIS_BUDGET_URL": settings.REDIS_URLS["REDIS_BUDGET_URL"].replace(
            "app_budget-pw", "wrong-pw"
        ),
    }
    with pytest.raises(StorageBudgetUnavailable, match="INFO memory as"):
        check_storage_budget("test")


def test_an_unreadable_budget_answers_503(alice: Client, settings, caplog) -> None:
    settings.REDIS_URLS = {**settings.REDIS_URLS, "REDIS_BUDGET_URL": ""}
    with caplog.at_level(logging.ERROR, logger="redisops.middleware"):
        response = post(alice, "/api/stream", {"fields": {"k": "v"}})
    assert response.status_code == 503
    assert response.json() == {"error": "storage budget unavailable"}
    assert "REDIS_BUDGET_URL is not set" in caplog.text


@pytest.mark.usefixtures("celery_worker", "over_budget")
def test_app_data_is_refused_above_the_budget_and_tasks_still_run(
    alice: Client, uid: str, caplog
) -> None:
    r = app_redis()
    stream = django_settings.APP_STREAM
    last = r.xrevrange(stream, count=1)
    sub = r.pubsub()
    try:
        pubsub.subscribe_confirmed(sub, pubsub.channel_for(f"b-{uid}"))
        with caplog.at_level(logging.WARNING, logger="redisops.middleware"):
            refused = {
                "stream": post(alice, "/api/stream", {"fields": {"probe": uid}}),
                "publish": post(
                    alice, "/api/publish", {"topic": f"b-{uid}", "message": uid}
                ),
                "payment": post(
                    alice,
                    "/api/tasks",
                    {
                        "task": "record_payment",
                        "args": {"payment_id": uid, "account": uid, "amount": 1},
                    },
                ),
                "flaky": post(
                    alice,
                    "/api/tasks",
                    {"task": "flaky", "args": {"key": uid, "failures": 0}},
                ),
            }
        for name, response in refused.items():
            assert response.status_code == 503, (name, response.content)
            assert response.json() == BUDGET_EXCEEDED
        logged = [
            r.getMessage()
            for r in caplog.records
            if r.getMessage().startswith("storage budget exceeded: refused ")
        ]
        assert len(logged) == 4
        assert "POST /api/stream for alice: used_memory" in logged[0]
        # Nothing was written.
        assert r.xrevrange(stream, count=1) == last
        assert sub.get_message(timeout=0.5) is None
        assert not r.hexists(tasks.ledger_key("alice"), uid)
        # The broker keeps the rest: a task that stores no app data runs.
        enqueued = post(alice, "/api/tasks", {"task": "add", "args": {"x": 2, "y": 3}})
        assert enqueued.status_code == 202, enqueued.content
        task_id = enqueued.json()["task_id"]
        assert tasks.add.AsyncResult(task_id).get(timeout=10) == 5
        assert alice.get(f"/api/tasks/{task_id}").json()["result"] == 5
        # Reads and the limiter work too.
        assert alice.get("/api/stream").status_code == 200
        limited = alice.get("/api/limited", REMOTE_ADDR="198.51.100.200")
        assert limited.status_code == 200
    finally:
        sub.close()


def test_writes_resume_within_a_second_once_memory_is_back_under_budget(
    alice: Client, admin_redis: redis.Redis
) -> None:
    original = admin_redis.config_get("maxmemory")["maxmemory"]
    used = int(admin_redis.info("memory")["used_memory"])
    admin_redis.config_set("maxmemory", int(used / 0.75))
    try:
        body = {"fields": {"k": "v"}}
        assert post(alice, "/api/stream", body).status_code == 503
    finally:
        admin_redis.config_set("maxmemory", original)
    started = time.monotonic()
    wait_for(
        lambda: post(alice, "/api/stream", body).status_code == 201,
        timeout=5,
        interval=0.1,
        what="writes accepted again",
    )
    assert time.monotonic() - started < storage_budget.CACHE_SECONDS + 1


@pytest.fixture
def small_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server of its own with the app's ACL users and 16 MB maxmemory."""
    server = RedisProcess(free_port(), tmp_path / "small-redis", maxmemory="16mb")
    server.start()
    yield server
    server.stop()


FLOOD_RATE = 300  # stream writes per second the flooding client may make


def test_a_flood_cannot_push_redis_past_the_budget(
    small_redis: RedisProcess, tmp_path: Path
) -> None:
    """The issue's flood, small: one client writes 4 KB stream entries
    through a real gunicorn as fast as it can, against a Redis of 16 MB, its
    limit raised to FLOOD_RATE a second (a burst of as many). Writes turn
    into 503s at the budget; used_memory stays within the documented bound,
    60 % plus what the client may write within one reading's lifetime; a
    task enqueued during the flood runs on a worker of that Redis."""
    urls = {
        name: small_redis.url(user)
        for name, user in (
            ("REDIS_BROKER_URL", "app_broker"),
            ("REDIS_RESULT_URL", "app_results"),
            ("REDIS_CACHE_URL", "app_cache"),
            ("REDIS_APP_URL", "app_data"),
            ("REDIS_BUDGET_URL", "app_budget"),
        )
    }
    limits = {"APP_RATE_STREAM_LIMIT": str(FLOOD_RATE), "APP_RATE_STREAM_PERIOD": "1"}
    web = start_gunicorn(tmp_path / "gunicorn-flood", **urls, **limits)
    # The test settings build their URLs from this port: a worker of the
    # small Redis.
    worker = Proc(
        worker_argv("INFO", "--hostname", "flood@%h"),
        tmp_path / "worker.log",
        subprocess_env(REDISOPS_TEST_REDIS_PORT=str(small_redis.port)),
    )
    admin = redis.Redis.from_url(small_redis.url(), decode_responses=True)
    headers = {"X-Forwarded-Proto": "https", **bearer(ALICE)}
    entry = {"fields": {"blob": "x" * 4000}}
    try:
        answers: list[tuple[int, object]] = []  # (status, body), 429s left out
        limited = 0
        deadline = time.monotonic() + 60
        while (
            time.monotonic() < deadline
            and [status for status, _ in answers[-20:]].count(503) < 20
        ):
            answer = web.via_socket("POST", "/api/stream", headers, entry)
            if answer.status == 429:
                limited += 1
                continue
            answers.append((answer.status, answer.json))
        statuses = [status for status, _ in answers]
        assert set(statuses) == {201, 503}, sorted(set(statuses))
        first_refusal = statuses.index(503)
        assert set(statuses[:first_refusal]) == {201}
        # Every refusal is the budget's: Redis itself never ran out of memory.
        assert all(body == BUDGET_EXCEEDED for s, body in answers if s == 503)
        memory = admin.info("memory")
        used, maxmemory = int(memory["used_memory"]), int(memory["maxmemory"])
        # The documented bound: 60 % plus what the client may write in one
        # reading's lifetime (its burst and a second at its rate), at the
        # stream's measured bytes per entry, and 2 % for everything else.
        stream = django_settings.APP_STREAM
        per_entry = admin.memory_usage(stream) / admin.xlen(stream)
        one_window = (FLOOD_RATE + FLOOD_RATE * storage_budget.CACHE_SECONDS) * (
            per_entry
        )
        bound = maxmemory * 0.62 + one_window
        print(
            f"flood: {statuses.count(201)} accepted ({limited} rate limited), "
            f"{per_entry:.0f} bytes each; used_memory {100 * used / maxmemory:.1f} % "
            f"of maxmemory, bound {100 * bound / maxmemory:.1f} %"
        )
        assert used <= bound, (used, bound)
        task = web.via_socket(
            "POST", "/api/tasks", headers, {"task": "add", "args": {"x": 40, "y": 2}}
        )
        assert task.status == 202, task.body
        task_id = task.json["task_id"]

        def done() -> dict:
            answer = web.via_socket("GET", f"/api/tasks/{task_id}", headers).json
            assert answer.get("ready"), answer
            return answer

        assert wait_for(done, timeout=30, what="the task")["result"] == 42
        refused = web.via_socket("POST", "/api/stream", headers, entry)
        assert (refused.status, refused.json) == (503, BUDGET_EXCEEDED)
        assert "storage budget exceeded: refused POST /api/stream for alice" in (
            web.proc.output
        )
    finally:
        worker.stop(timeout=30)
        web.proc.stop()
