"""The JSON API: good answers, and 400/405 (never 500) for bad input."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from importlib import metadata

import pytest
from django.test import Client

from redisops import tasks
from redisops.clients import app_redis
from redisops.task_owners import enqueue_owned
from redisops.tests.conftest import wait_for

JSON = "application/json"


def post(client: Client, path: str, body: object, **extra) -> object:
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(
        path, data=data, content_type=extra.pop("content_type", JSON), **extra
    )


def test_healthz_answers_with_the_installed_version(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "version": metadata.version("redisops-app"),
    }


def test_version_endpoint(client: Client) -> None:
    assert client.get("/version").json()["name"] == "redisops-app"


@pytest.mark.django_db
def test_readyz_needs_a_fresh_beat_heartbeat(client: Client) -> None:
    r = app_redis()
    r.delete(tasks.HEARTBEAT_KEY)
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["beat_heartbeat"]["ok"] is False
    assert all(
        body["checks"][k]["ok"] for k in ("redis_broker", "redis_app", "database")
    )
    # The text itself, not only its JSON: the monitoring's blackbox module
    # http_beat_heartbeat (roles/exporters, CeleryBeatHeartbeatStale) pages on
    # this regular expression of the body.
    assert re.search(
        r'"redis_app": \{"ok": true\}.*"beat_heartbeat": \{"ok": false\}',
        response.content.decode(),
    ), response.content
    tasks.write_heartbeat()  # what beat's schedule runs
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    r.set(tasks.HEARTBEAT_KEY, int(r.time()[0]) - 10_000)
    assert client.get("/readyz").status_code == 503


@pytest.mark.usefixtures("celery_worker")
def test_enqueue_and_read_result(alice: Client) -> None:
    response = post(alice, "/api/tasks", {"task": "add", "args": {"x": 2, "y": 40}})
    assert response.status_code == 202, response.content
    task_id = response.json()["task_id"]
    tasks.add.AsyncResult(task_id).get(timeout=10)
    body = alice.get(f"/api/tasks/{task_id}").json()
    assert body == {"task_id": task_id, "state": "SUCCESS", "ready": True, "result": 42}


@pytest.mark.usefixtures("celery_worker")
def test_failed_task_result_shows_the_error_class_and_logs_the_message(
    alice: Client, caplog
) -> None:
    """The caller gets the exception's class name and the task id; the message
    (it may carry data) goes to the log with the task id."""
    # The API refuses failures < 0, so enqueue directly (owned by alice, as
    # the API would): flaky raises ValueError.
    task_id = enqueue_owned(
        "alice", tasks.flaky, {"key": uuid.uuid4().hex, "failures": -1}
    )
    result = tasks.flaky.AsyncResult(task_id)
    with pytest.raises(ValueError, match="failures must be"):
        result.get(timeout=10)
    with caplog.at_level(logging.WARNING, logger="redisops.views"):
        response = alice.get(f"/api/tasks/{result.id}")
    assert response.status_code == 200
    assert response.json() == {
        "task_id": result.id,
        "state": "FAILURE",
        "ready": True,
        "error": "ValueError",
    }
    assert "failures must be" not in response.content.decode()
    [logged] = [r for r in caplog.records if r.name == "redisops.views"]
    assert logged.getMessage() == (
        f"task {result.id} failed: ValueError: failures must be >= 0"
    )


@pytest.mark.django_db
@pytest.mark.usefixtures("celery_beat")
def test_real_beat_keeps_readyz_ready(client: Client) -> None:
    """celery beat (1 s heartbeat) -> worker -> heartbeat key -> /readyz 200."""
    r = app_redis()
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    first = r.get(tasks.HEARTBEAT_KEY)
    wait_for(
        lambda: r.get(tasks.HEARTBEAT_KEY) != first,
        timeout=10,
        what="beat's next heartbeat",
    )


@pytest.mark.django_db
def test_readyz_answers_only_ok_flags_and_logs_the_reason(
    client: Client, settings, caplog
) -> None:
    secret_url = "redis://app_cache:s3cret-pw@127.0.0.1:1/0"  # noqa: S105 - a fake password
    settings.REDIS_URLS = {**settings.REDIS_URLS, "REDIS_CACHE_URL": secret_url}
    with caplog.at_level(logging.WARNING, logger="redisops.views"):
        response = client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["redis_cache"] == {"ok": False}
    assert all(set(c) == {"ok"} for c in checks.values())
    assert "127.0.0.1:1" not in response.content.decode()
    assert "readyz: redis_cache failed" in caplog.text


def test_stream_produce_and_progress(alice: Client) -> None:
    response = post(alice, "/api/stream", {"fields": {"order": "42"}})
    assert response.status_code == 201
    progress = alice.get("/api/stream").json()
    assert progress["length"] >= 1


def test_rate_limited_endpoint_answers_429_with_headers(client: Client) -> None:
    app_redis().delete("app:rl:gcra:api-limited:10.9.8.7")
    answers = [client.get("/api/limited", REMOTE_ADDR="10.9.8.7") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[0]["RateLimit-Limit"] == "3"
    assert answers[0]["RateLimit-Remaining"] == "2"
    denied = answers[-1]
    assert denied.json()["error"] == "rate limit exceeded"
    assert int(denied["Retry-After"]) >= 1
    assert denied["RateLimit-Remaining"] == "0"
    assert int(denied["RateLimit-Reset"]) >= 1
    # Another client has its own budget.
    assert client.get("/api/limited", REMOTE_ADDR="10.9.8.6").status_code == 200


@pytest.mark.parametrize(("mode", "status"), [("open", 200), ("closed", 503)])
def test_limiter_circuit_breaker_skips_a_dead_redis_for_a_while(
    client: Client, settings, monkeypatch, mode: str, status: int
) -> None:
    """After one connection error, requests don't wait for Redis again until
    RATELIMIT_BREAKER_SECONDS passed; then Redis is tried again."""
    import redisops.middleware as middleware
    from redisops.connections import client_from_url

    dead = client_from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    contacted: list[int] = []

    def app_redis_spy():
        contacted.append(1)
        return dead

    monkeypatch.setattr(middleware, "app_redis", app_redis_spy)
    settings.RATELIMIT_FAILURE_MODE = mode
    settings.RATELIMIT_BREAKER_SECONDS = 0.3
    answers = [client.get("/api/limited").status_code for _ in range(5)]
    assert answers == [status] * 5
    assert len(contacted) == 1  # only the first request tried Redis
    time.sleep(0.35)
    assert client.get("/api/limited").status_code == status
    assert len(contacted) == 2  # breaker half-open: Redis tried again


@pytest.mark.parametrize(("mode", "status"), [("open", 200), ("closed", 503)])
def test_limiter_failure_mode_when_redis_is_down(
    client: Client, settings, caplog, monkeypatch, mode: str, status: int
) -> None:
    import redisops.middleware as middleware
    from redisops.connections import client_from_url

    dead = client_from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    monkeypatch.setattr(middleware, "app_redis", lambda: dead)
    settings.RATELIMIT_FAILURE_MODE = mode
    with caplog.at_level(logging.WARNING, logger="redisops.middleware"):
        response = client.get("/api/limited")
    assert response.status_code == status
    assert f"failing {mode}" in caplog.text


BAD_INPUT = [
    ("/api/tasks", "{not json", JSON, "malformed JSON"),
    ("/api/tasks", "[1, 2]", JSON, "must be an object"),
    ("/api/tasks", "[" * 50_000, JSON, "nested too deeply"),
    ("/api/tasks", '{"a":' * 10_000 + "1" + "}" * 10_000, JSON, "nested too deeply"),
    ("/api/tasks", {"task": "add"}, "text/plain", "Content-Type"),
    ("/api/tasks", {}, JSON, "missing field 'task'"),
    ("/api/tasks", {"task": 5}, JSON, "must be str"),
    ("/api/tasks", {"task": "rm_rf"}, JSON, "unknown task"),
    ("/api/tasks", {"task": "add", "args": []}, JSON, "'args' must be an object"),
    ("/api/tasks", {"task": "add", "args": {"x": 1}}, JSON, "missing field 'y'"),
    ("/api/tasks", {"task": "add", "args": {"x": "1", "y": 2}}, JSON, "must be int"),
    ("/api/tasks", {"task": "add", "args": {"x": True, "y": 2}}, JSON, "must be int"),
    (
        "/api/tasks",
        {"task": "add", "args": {"x": 1, "y": 2, "z": 3}},
        JSON,
        "unknown arg",
    ),
    (
        "/api/tasks",
        {"task": "heavy_checksum", "args": {"size_kib": 10**6, "rounds": 1}},
        JSON,
        "between",
    ),
    (
        "/api/tasks",
        {"task": "add", "args": {"x": 1, "y": 2}, "countdown": 10**6},
        JSON,
        "countdown",
    ),
    ("/api/publish", {"topic": "a b", "message": "x"}, JSON, "topic"),
    ("/api/publish", {"topic": "news\n", "message": "x"}, JSON, "topic"),
    ("/api/publish", {"topic": "x" * 65, "message": "x"}, JSON, "topic"),
    ("/api/publish", {"topic": "t"}, JSON, "message"),
    ("/api/publish", {"topic": "t", "message": 7}, JSON, "message"),
    ("/api/stream", {"fields": {}}, JSON, "fields"),
    ("/api/stream", {"fields": {"a": 1}}, JSON, "must be a string"),
    ("/api/stream", {"fields": "x"}, JSON, "fields"),
    ("/api/stream", {"fields": {"dlq_reason": "x"}}, JSON, "is reserved"),
    # unknown fields, at every level
    (
        "/api/tasks",
        {"task": "add", "args": {"x": 1, "y": 2}, "queue": "heavy"},
        JSON,
        "unknown field(s) ['queue']",
    ),
    (
        "/api/publish",
        {"topic": "t", "message": "m", "channel": "x"},
        JSON,
        "unknown field(s) ['channel']",
    ),
    (
        "/api/stream",
        {"fields": {"a": "b"}, "maxlen": 1},
        JSON,
        "unknown field(s) ['maxlen']",
    ),
    # what only the worker's own callers may pass
    (
        "/api/tasks",
        {
            "task": "record_payment",
            "args": {"payment_id": "p", "account": "a", "amount": 1, "client": "bob"},
        },
        JSON,
        "unknown argument(s) for record_payment: ['client']",
    ),
    (
        "/api/tasks",
        {
            "task": "record_payment",
            "args": {"payment_id": "p", "account": "a", "amount": 1, "hold_seconds": 9},
        },
        JSON,
        "unknown argument(s) for record_payment: ['hold_seconds']",
    ),
    (
        "/api/tasks",
        {"task": "flaky", "args": {"key": "k", "failures": 1, "client": "bob"}},
        JSON,
        "unknown argument(s) for flaky: ['client']",
    ),
    # internal tasks stay internal
    ("/api/tasks", {"task": "write_heartbeat"}, JSON, "unknown task"),
    ("/api/tasks", {"task": "trim_streams"}, JSON, "unknown task"),
    ("/api/tasks", {"task": "redisops.tasks.write_heartbeat"}, JSON, "unknown task"),
    # wrong types and sizes
    (
        "/api/tasks",
        {"task": "add", "args": {"x": 1, "y": 2}, "countdown": "5"},
        JSON,
        "must be int",
    ),
    (
        "/api/tasks",
        {"task": "add", "args": {"x": 1, "y": 2}, "countdown": -1},
        JSON,
        "countdown",
    ),
    (
        "/api/tasks",
        {"task": "notify", "args": {"user_id": "u" * 201}},
        JSON,
        "1-200 characters",
    ),
    (
        "/api/tasks",
        {"task": "notify", "args": {"user_id": ""}},
        JSON,
        "1-200 characters",
    ),
    ("/api/stream", {"fields": {"k" * 65: "v"}}, JSON, "invalid field name"),
    (
        "/api/stream",
        {"fields": {f"k{i}": "v" for i in range(33)}},
        JSON,
        "1-32 entries",
    ),
    ("/api/stream", {"fields": {"k": "v" * 4097}}, JSON, "at most 4096"),
    # bytes as well as characters: 2100 "é" are 4200 bytes
    (
        "/api/stream",
        {"fields": {"k": "\u00e9" * 2100}},
        JSON,
        "entry is 4201 bytes; at most 4096",
    ),
    (
        "/api/stream",
        {"fields": {"a": "x" * 2048, "b": "x" * 2047}},
        JSON,
        "entry is 4097 bytes",
    ),
    ("/api/publish", {"topic": "t", "message": "\u00e9" * 2049}, JSON, "1-4096 bytes"),
    ("/api/publish", {"topic": "t", "message": ""}, JSON, "1-4096 bytes"),
    ("/api/publish", '{"topic": "t", "message": "\\ud800"}', JSON, "lone surrogate"),
    ("/api/stream", '{"fields": {"k": "\\udfff"}}', JSON, "lone surrogate"),
    (
        "/api/tasks",
        {"task": "add", "args": {"x": 1, "y": 2}, "countdown": 61},
        JSON,
        "countdown must be 0-60",
    ),
    # bad content types
    ("/api/publish", {"topic": "t", "message": "m"}, "text/plain", "Content-Type"),
    (
        "/api/stream",
        {"fields": {"a": "b"}},
        "application/x-www-form-urlencoded",
        "Content-Type",
    ),
]


@pytest.mark.parametrize(("path", "body", "content_type", "reason"), BAD_INPUT)
def test_bad_input_answers_400_with_a_reason(
    alice: Client, path: str, body: object, content_type: str, reason: str
) -> None:
    response = post(alice, path, body, content_type=content_type)
    assert response.status_code == 400, response.content
    assert reason in response.json()["error"]


def test_oversized_body_answers_400(alice: Client, settings) -> None:
    body = json.dumps(
        {"topic": "t", "message": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)}
    )
    response = post(alice, "/api/publish", body)
    assert response.status_code == 400
    assert "larger than" in response.json()["error"]


def test_pubsub_status_over_http(alice: Client) -> None:
    response = alice.get("/api/pubsub?count=5")
    assert response.status_code == 200
    body = response.json()
    assert isinstance(body["listeners"], list)
    assert isinstance(body["received"], list)
    assert len(body["received"]) <= 5


@pytest.mark.parametrize(
    "count", ["\u00b2", "abc", "", "0", "1001", "-1", "1.5", "\u0665"]
)
def test_pubsub_bad_count_answers_400(alice: Client, count: str) -> None:
    response = alice.get("/api/pubsub", {"count": count})
    assert response.status_code == 400, response.content
    assert "count must be" in response.json()["error"]


def test_bad_task_id_answers_400(alice: Client) -> None:
    response = alice.get("/api/tasks/not-a-uuid")
    assert response.status_code == 400
    assert "UUID" in response.json()["error"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/healthz"),
        ("get", "/api/tasks"),
        ("delete", "/api/stream"),
        ("put", "/api/publish"),
        ("post", "/readyz"),
    ],
)
def test_wrong_method_answers_405_json(client: Client, method: str, path: str) -> None:
    response = getattr(client, method)(path)
    assert response.status_code == 405
    assert response["Content-Type"] == JSON
    assert "not allowed" in response.json()["error"]
    assert response["Allow"]


def test_unknown_path_answers_404_json(client: Client) -> None:
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.json() == {"error": "not found"}


def test_redis_down_answers_503_json_not_a_traceback(
    alice: Client, monkeypatch
) -> None:
    import redisops.views as views
    from redisops.connections import client_from_url

    dead = client_from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    monkeypatch.setattr(views, "app_redis", lambda: dead)
    alice.raise_request_exception = False
    response = post(alice, "/api/publish", {"topic": "t", "message": "m"})
    assert response.status_code == 503
    assert response.json() == {"error": "redis unavailable"}


def test_broker_down_answers_503_json_not_a_traceback(
    alice: Client, monkeypatch
) -> None:
    """Celery raises kombu's OperationalError, not a RedisError, once its
    publish retries are spent: still a 503 with a JSON reason."""
    app = tasks.add.app  # the app the API publishes with

    def reset_pools() -> None:  # rebuilt from app.conf on next use
        app._pool = None
        app.amqp._producer_pool = None

    # Set from Django settings, app.conf answers under the namespaced names.
    monkeypatch.setitem(app.conf, "CELERY_BROKER_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setitem(
        app.conf,
        "CELERY_TASK_PUBLISH_RETRY_POLICY",
        {"max_retries": 1, "interval_start": 0},
    )
    reset_pools()
    try:
        alice.raise_request_exception = False
        response = post(alice, "/api/tasks", {"task": "add", "args": {"x": 1, "y": 2}})
    finally:
        monkeypatch.undo()
        reset_pools()
    assert response.status_code == 503
    assert response.json() == {"error": "broker unavailable"}


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/api/stream", {"fields": {"a": "x" * 2048, "b": "x" * 2046}}, 201),
        ("/api/publish", {"topic": "t", "message": "\u00e9" * 2048}, 200),
        ("/api/tasks", {"task": "add", "args": {"x": 1, "y": 2}, "countdown": 60}, 202),
    ],
)
def test_the_largest_accepted_input_passes(
    alice: Client, path: str, body: object, status: int
) -> None:
    """The bounds above refuse one byte (or second) more than this."""
    response = post(alice, path, body)
    assert response.status_code == status, response.content
