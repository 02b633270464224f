"""Bearer tokens on the API (redisops.api_auth): who needs one, what a refused
client sees, that a refused write changes nothing in Redis, rotation without
a restart, per-client rate limits, and what is (never) logged."""

from __future__ import annotations

import base64
import json
import logging
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from django.conf import settings as django_settings
from django.test import Client

from redisops import pubsub, tasks
from redisops.clients import app_redis
from redisops.tests.api_clients import bearer, write_token_file
from redisops.tests.conftest import wait_for

JSON = "application/json"
CHALLENGE = 'Bearer realm="redisops"'
INVALID = 'Bearer realm="redisops", error="invalid_token"'


@dataclass
class Tokens:
    """This test's own token file: carol mid-rotation (old and new), dave."""

    path: Path
    old: str
    new: str
    dave: str

    def revoke_old(self) -> None:
        write_token_file(self.path, {"carol": (self.new,), "dave": (self.dave,)})


@pytest.fixture
def tokens(tmp_path: Path, settings) -> Tokens:
    t = Tokens(
        tmp_path / "api-tokens",
        secrets.token_urlsafe(32),
        secrets.token_urlsafe(32),
        secrets.token_urlsafe(32),
    )
    write_token_file(t.path, {"carol": (t.old, t.new), "dave": (t.dave,)})
    settings.APP_API_TOKENS_FILE = str(t.path)
    return t


def call(
    client: Client,
    method: str,
    path: str,
    body: object = None,
    remote_addr: str = "127.0.0.1",
    **headers: str,
) -> object:
    """One request with these headers (Authorization, ...) from remote_addr."""
    data = {} if body is None else {"data": json.dumps(body), "content_type": JSON}
    return getattr(client, method)(
        path, **data, headers=headers, REMOTE_ADDR=remote_addr
    )


def refused_credentials(case: str, tokens: Tokens, client: Client) -> dict[str, str]:
    """Authorization headers of each kind of refused client."""
    if case == "missing":
        return {}
    if case == "basic":
        return {"Authorization": "Basic " + base64.b64encode(b"carol:pw").decode()}
    if case == "wrong":
        return bearer(secrets.token_urlsafe(32))
    # revoked: the old token works until its line is removed from the file.
    assert call(client, "get", "/api/stream", **bearer(tokens.old)).status_code == 200
    tokens.revoke_old()
    return bearer(tokens.old)


CASES = ["missing", "basic", "wrong", "revoked"]


def assert_refused(response: object, case: str) -> None:
    assert response.status_code == 401, response.content
    assert response["Content-Type"] == JSON
    assert "error" in response.json()
    expected = CHALLENGE if case in {"missing", "basic"} else INVALID
    assert response["WWW-Authenticate"] == expected


PROTECTED = [
    ("post", "/api/tasks"),
    ("get", f"/api/tasks/{uuid.uuid4()}"),
    ("post", "/api/publish"),
    ("post", "/api/stream"),
    ("get", "/api/stream"),
    ("get", "/api/pubsub"),
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_every_api_endpoint_refuses_a_client_without_a_valid_token(
    client: Client, tokens: Tokens, case: str, method: str, path: str
) -> None:
    headers = refused_credentials(case, tokens, client)
    body = {} if method == "post" else None
    assert_refused(call(client, method, path, body, **headers), case)


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/healthz", "/version", "/readyz", "/api/limited"])
def test_probes_and_the_limiter_demo_need_no_token(client: Client, path: str) -> None:
    response = client.get(path, REMOTE_ADDR=f"198.51.100.{secrets.randbelow(250)}")
    assert response.status_code in {200, 503} if path == "/readyz" else {200}
    assert "WWW-Authenticate" not in response


def test_a_wrong_method_is_405_before_authentication(client: Client) -> None:
    response = client.get("/api/publish")
    assert response.status_code == 405
    assert response["Allow"] == "POST"


# -- a refused write changes nothing ---------------------------------------------------


def _stream_effect(client: Client, tokens: Tokens, headers: dict, uid: str) -> None:
    r = app_redis()
    refused = call(client, "post", "/api/stream", {"fields": {"probe": uid}}, **headers)
    control = call(
        client,
        "post",
        "/api/stream",
        {"fields": {"probe": f"{uid}-control"}},
        **bearer(tokens.new),
    )
    assert control.status_code == 201, control.content
    probes = [f.get("probe") for _, f in r.xrange(django_settings.APP_STREAM)]
    assert f"{uid}-control" in probes
    assert uid not in probes
    return refused


def _publish_effect(client: Client, tokens: Tokens, headers: dict, uid: str) -> None:
    r = app_redis()
    sub = r.pubsub()
    try:
        pubsub.subscribe_confirmed(sub, pubsub.channel_for(f"t-{uid}"))
        refused = call(
            client,
            "post",
            "/api/publish",
            {"topic": f"t-{uid}", "message": uid},
            **headers,
        )
        control = call(
            client,
            "post",
            "/api/publish",
            {"topic": f"t-{uid}", "message": "control"},
            **bearer(tokens.new),
        )
        assert control.status_code == 200, control.content
        got: list[str] = []
        deadline = time.monotonic() + 5
        while "control" not in got and time.monotonic() < deadline:
            msg = sub.get_message(timeout=0.2)
            if msg and msg["type"] == "message":
                got.append(msg["data"])
        assert got == ["control"]  # published in order: the refused one never was
    finally:
        sub.close()
    return refused


def admin() -> redis.Redis:
    """The fixtures' own login: SCAN, which the app's users may not run."""
    return redis.Redis.from_url(
        django_settings.REDIS_TEST_ADMIN_URL, decode_responses=True
    )


def _payment_keys(r: redis.Redis, payment_id: str) -> list[str]:
    return list(r.scan_iter(match=f"app:task:payment:done:*{payment_id}", count=1000))


def _ledger_has(r: redis.Redis, account: str) -> bool:
    return any(r.hexists(k, account) for k in r.scan_iter(match="app:task:ledger*"))


def _task_effect(client: Client, tokens: Tokens, headers: dict, uid: str) -> None:
    r = admin()  # SCAN: the app's own user may not list keys
    payment = {"payment_id": uid, "account": uid, "amount": 5}
    refused = call(
        client,
        "post",
        "/api/tasks",
        {"task": "record_payment", "args": payment},
        **headers,
    )
    # One account for every control: carol's ledger holds few accounts.
    control_payment = {"payment_id": f"{uid}-c", "account": "control", "amount": 5}
    control = call(
        client,
        "post",
        "/api/tasks",
        {"task": "record_payment", "args": control_payment},
        **bearer(tokens.new),
    )
    assert control.status_code == 202, control.content
    wait_for(lambda: _payment_keys(r, f"{uid}-c"), what="the control payment")
    assert _payment_keys(r, uid) == []
    assert not _ledger_has(r, uid)
    return refused


EFFECTS: dict[str, Callable[..., object]] = {
    "tasks": _task_effect,
    "publish": _publish_effect,
    "stream": _stream_effect,
}


@pytest.mark.usefixtures("celery_worker")
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("endpoint", sorted(EFFECTS))
def test_a_refused_write_enqueues_publishes_and_stores_nothing(
    client: Client, tokens: Tokens, uid: str, case: str, endpoint: str
) -> None:
    """The refused request, then the same request with a valid token (the
    control): the control's effect shows up, the refused one's never does."""
    headers = refused_credentials(case, tokens, client)
    refused = EFFECTS[endpoint](client, tokens, headers, uid)
    assert_refused(refused, case)


@pytest.mark.usefixtures("celery_worker")
def test_a_result_read_without_a_valid_token_shows_nothing(
    client: Client, tokens: Tokens
) -> None:
    enqueued = call(
        client,
        "post",
        "/api/tasks",
        {"task": "add", "args": {"x": 1, "y": 2}},
        **bearer(tokens.new),
    )
    task_id = enqueued.json()["task_id"]
    tasks.add.AsyncResult(task_id).get(timeout=10)
    for case in ("missing", "wrong"):
        headers = refused_credentials(case, tokens, client)
        response = call(client, "get", f"/api/tasks/{task_id}", **headers)
        assert_refused(response, case)
        assert set(response.json()) == {"error"}


# -- rotation, a broken file -----------------------------------------------------------


def test_both_tokens_of_a_rotation_are_the_same_client(
    client: Client, tokens: Tokens, settings
) -> None:
    """Old and new token authenticate as carol, and share carol's limit."""
    settings.APP_RATE_READ = {"algorithm": "gcra", "limit": 2, "period": 60}
    app_redis().delete("app:rl:gcra:api-read:client:carol")
    statuses = [
        call(client, "get", "/api/stream", **bearer(t)).status_code
        for t in (tokens.old, tokens.new, tokens.old)
    ]
    assert statuses == [200, 200, 429]


def test_a_revoked_token_is_refused_without_a_restart(
    client: Client, tokens: Tokens
) -> None:
    """The file is read again when it changes: the next request after the
    rename sees it (test_proxy_contract.py shows it under gunicorn)."""
    assert call(client, "get", "/api/stream", **bearer(tokens.old)).status_code == 200
    tokens.revoke_old()
    response = call(client, "get", "/api/stream", **bearer(tokens.old))
    assert_refused(response, "revoked")
    assert call(client, "get", "/api/stream", **bearer(tokens.new)).status_code == 200
    eve = secrets.token_urlsafe(32)
    write_token_file(tokens.path, {"carol": (tokens.new,), "eve": (eve,)})
    assert call(client, "get", "/api/stream", **bearer(eve)).status_code == 200
    assert call(client, "get", "/api/stream", **bearer(tokens.dave)).status_code == 401


def test_a_broken_token_file_answers_503_and_logs_once(
    client: Client, tokens: Tokens, caplog
) -> None:
    tokens.path.write_text(f"carol {tokens.new}\n")  # a token where the hash goes
    with caplog.at_level(logging.ERROR, logger="redisops.api_auth"):
        answers = [
            call(client, "get", "/api/stream", **bearer(tokens.new)) for _ in range(3)
        ]
    assert [a.status_code for a in answers] == [503] * 3
    assert answers[0].json() == {"error": "authentication unavailable"}
    errors = [r.getMessage() for r in caplog.records if r.name == "redisops.api_auth"]
    assert len(errors) == 1
    assert "line 1: the second field must be the token's sha256" in errors[0]
    assert tokens.new not in caplog.text
    # Without a token the answer is still the challenge.
    assert call(client, "get", "/api/stream").status_code == 401
    tokens.revoke_old()  # a good file again
    assert call(client, "get", "/api/stream", **bearer(tokens.new)).status_code == 200


# -- rate limits per client ------------------------------------------------------------


ADD = {"task": "add", "args": {"x": 1, "y": 1}}
PUBLISH = {"topic": "t", "message": "m"}
ENDPOINT_LIMITS = [
    ("APP_RATE_TASKS", "api-tasks", "post", "/api/tasks", ADD),
    ("APP_RATE_PUBLISH", "api-publish", "post", "/api/publish", PUBLISH),
    ("APP_RATE_STREAM", "api-stream", "post", "/api/stream", {"fields": {"k": "v"}}),
    ("APP_RATE_READ", "api-read", "get", "/api/stream", None),
]


@pytest.mark.parametrize(
    ("setting", "scope", "method", "path", "body"), ENDPOINT_LIMITS
)
def test_each_endpoint_limits_per_client_wherever_it_calls_from(
    client: Client,
    tokens: Tokens,
    settings,
    setting: str,
    scope: str,
    method: str,
    path: str,
    body: object,
) -> None:
    """carol from two addresses shares one budget (key client:carol); dave
    has his own; no key is made for an address."""
    setattr(settings, setting, {"algorithm": "gcra", "limit": 2, "period": 60})
    r = app_redis()
    r.delete(f"app:rl:gcra:{scope}:client:carol", f"app:rl:gcra:{scope}:client:dave")
    ok = (
        200
        if method == "get"
        else {"api-tasks": 202, "api-stream": 201}.get(scope, 200)
    )

    def as_(token: str, addr: str) -> object:
        return getattr(client, method)(
            path,
            **(
                {} if body is None else {"data": json.dumps(body), "content_type": JSON}
            ),
            headers=bearer(token),
            REMOTE_ADDR=addr,
        )

    answers = [
        as_(tokens.old, "198.51.100.1"),
        as_(tokens.new, "198.51.100.2"),
        as_(tokens.new, "198.51.100.3"),
    ]
    assert [a.status_code for a in answers] == [ok, ok, 429]
    denied = answers[-1]
    assert denied.json()["error"] == "rate limit exceeded"
    assert int(denied["Retry-After"]) >= 1
    assert answers[0]["RateLimit-Limit"] == "2"
    assert as_(tokens.dave, "198.51.100.1").status_code == ok
    assert r.exists(f"app:rl:gcra:{scope}:client:carol")
    assert r.exists(f"app:rl:gcra:{scope}:client:dave")
    assert not any(r.exists(f"app:rl:gcra:{scope}:198.51.100.{i}") for i in (1, 2, 3))


def test_reads_share_one_limit(client: Client, tokens: Tokens, settings) -> None:
    settings.APP_RATE_READ = {"algorithm": "gcra", "limit": 2, "period": 60}
    app_redis().delete("app:rl:gcra:api-read:client:dave")
    auth = bearer(tokens.dave)
    statuses = [
        call(client, "get", "/api/stream", **auth).status_code,
        call(client, "get", "/api/pubsub", **auth).status_code,
        call(client, "get", f"/api/tasks/{uuid.uuid4()}", **auth).status_code,
    ]
    assert statuses[:2] == [200, 200]
    assert statuses[2] == 429


def test_a_refused_token_never_reaches_the_limiter(
    client: Client, tokens: Tokens
) -> None:
    """Authentication runs first: 401s cost no Redis call and no budget."""
    r = admin()
    r.delete("app:rl:gcra:api-stream:198.51.100.9")
    for _ in range(3):
        response = client.post(
            "/api/stream",
            data="{}",
            content_type=JSON,
            headers=bearer("x" * 40),
            REMOTE_ADDR="198.51.100.9",
        )
        assert response.status_code == 401
        assert "RateLimit-Limit" not in response
    assert not list(r.scan_iter(match="app:rl:*198.51.100.9"))


# -- logs ------------------------------------------------------------------------------


def test_tokens_are_never_logged_and_the_client_is_at_debug(
    client: Client, tokens: Tokens, caplog
) -> None:
    wrong = secrets.token_urlsafe(32)
    with caplog.at_level(logging.DEBUG):
        call(
            client, "post", "/api/stream", {"fields": {"k": "v"}}, **bearer(tokens.new)
        )
        call(client, "get", "/api/stream", None, "198.51.100.77", **bearer(wrong))
        call(client, "get", "/api/stream", **bearer(tokens.old))
    for secret in (tokens.old, tokens.new, wrong):
        assert secret not in caplog.text
        assert all(secret not in repr(r.args) for r in caplog.records)
    auth = [r for r in caplog.records if r.name == "redisops.api_auth"]
    assert [(r.levelname, r.getMessage()) for r in auth] == [
        ("DEBUG", "API client carol: POST /api/stream"),
        ("WARNING", "API token refused: GET /api/stream from 198.51.100.77"),
        ("DEBUG", "API client carol: GET /api/stream"),
    ]
