"""The API's writes and result reads need a client's bearer token, tried as an
attacker would from another host: no token, a wrong one, a revoked one; each answers
401 and nothing is enqueued, published or stored. A client sees only its own tasks."""

import uuid

import pytest

from redisops_testlib.api import AUTH, CLIENTS, enqueue, http
from redisops_testlib.playbooks import Ops, restore_api_tokens
from redisops_testlib.redis_cli import admin

OTHER = {"Authorization": f"Bearer {CLIENTS['other'][0]}"}
WRONG = {"Authorization": "Bearer " + "w" * 40}
WRITES = [
    ("POST", "/api/tasks", {"task": "add", "args": {"x": 1, "y": 2}}),
    ("POST", "/api/publish", {"topic": "auth", "message": "m"}),
    ("POST", "/api/stream", {"fields": {"auth": "probe"}}),
]


def _stored(redis) -> tuple[str, ...]:
    """What a write would change: the task queue, the stream, the publish record."""
    return (
        admin(redis, "LLEN", "broker:default"),
        admin(redis, "XLEN", "app:stream:events"),
        admin(redis, "XLEN", "app:pubsub:received"),
    )


def _refused(r: dict, invalid: bool) -> None:
    assert r["status"] == 401, r["body"]
    assert r["json"]["error"]
    challenge = r["headers"]["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="redisops"')
    assert ('error="invalid_token"' in challenge) == invalid


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=[p for _, p, _ in WRITES])
def test_a_write_without_a_valid_token_is_refused_and_stores_nothing(worker, redis, base_url, method, path, body):
    before = _stored(redis)
    _refused(http(worker, method, f"{base_url}{path}", body), invalid=False)
    _refused(http(worker, method, f"{base_url}{path}", body, WRONG), invalid=True)
    _refused(http(worker, method, f"{base_url}{path}", body, {"Authorization": "Basic dGVzdHM6eA=="}), invalid=False)
    assert _stored(redis) == before


def test_a_task_result_needs_a_token_and_belongs_to_its_client(web, worker, base_url):
    task_id = enqueue(web, base_url, "add", {"x": 1, "y": 1})
    url = f"{base_url}/api/tasks/{task_id}"
    _refused(http(worker, "GET", url), invalid=False)
    _refused(http(worker, "GET", url, headers=WRONG), invalid=True)
    # Another client gets the answer an unknown id gets.
    other = http(worker, "GET", url, headers=OTHER)
    unknown = http(worker, "GET", f"{base_url}/api/tasks/{uuid.uuid4()}", headers=OTHER)
    assert (other["status"], other["json"]) == (unknown["status"], unknown["json"]) == (404, other["json"])
    assert http(worker, "GET", url, headers=AUTH)["status"] == 200


def test_a_revoked_token_is_refused_at_once_without_a_restart(web, worker, redis, base_url):
    """The other client's token rotated (rotate-api-token.yml add, then finish): its old
    token is refused on every write, gunicorn not restarted; then rotated back."""
    old, new = CLIENTS["other"][0], "other-rotated-token-0123456789-0123456789"
    master = web.check_output("systemctl show -p MainPID --value redisops-web.service")
    ops = Ops("all")

    def rotate(phase: str, token: str, inventory: str) -> str:
        clients = {**CLIENTS, "other": [inventory]}
        return ops.ok(
            "rotate-api-token",
            {"phase": phase, "client": "other", "new_token": token, "django_app_api_clients": clients},
        )

    try:
        assert "phase add" in rotate("add", new, old)
        assert "phase finish" in rotate("finish", new, new)
        before = _stored(redis)
        for method, path, body in WRITES:
            _refused(http(worker, method, f"{base_url}{path}", body, OTHER), invalid=True)
        assert _stored(redis) == before
        assert (
            http(
                worker,
                "POST",
                f"{base_url}/api/stream",
                {"fields": {"auth": "new"}},
                {"Authorization": f"Bearer {new}"},
            )["status"]
            == 201
        )
        assert web.check_output("systemctl show -p MainPID --value redisops-web.service") == master
    finally:
        restore_api_tokens()
    assert http(worker, "POST", f"{base_url}/api/stream", {"fields": {"auth": "back"}}, OTHER)["status"] == 201
