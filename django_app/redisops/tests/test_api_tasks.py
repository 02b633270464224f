"""The public task list is safe to expose: results only for the client that
enqueued the task, a ledger per client with bounded accounts and lifetime,
flaky's counters per client, and no demo failure knob through the stream
route. Through a real worker."""

from __future__ import annotations

import json
import secrets
import uuid
from pathlib import Path

import pytest
import redis
from django.conf import settings as django_settings
from django.test import Client

from redisops import task_owners, tasks
from redisops.clients import app_redis
from redisops.tests.api_clients import api_client, write_token_file
from redisops.tests.conftest import wait_for

JSON = "application/json"
pytestmark = pytest.mark.usefixtures("celery_worker")


def post(client: Client, path: str, body: object) -> object:
    return client.post(path, data=json.dumps(body), content_type=JSON)


def enqueue(client: Client, task: str, **args: object) -> str:
    response = post(client, "/api/tasks", {"task": task, "args": args})
    assert response.status_code == 202, response.content
    return response.json()["task_id"]


def result(client: Client, task_id: str) -> dict:
    """The result as the API shows it, once the task finished."""

    def ready() -> dict:
        body = client.get(f"/api/tasks/{task_id}").json()
        assert body.get("ready"), body
        return body

    return wait_for(ready, timeout=15, what=f"task {task_id}")


def test_another_clients_task_id_is_404_like_an_unknown_one(
    alice: Client, bob: Client
) -> None:
    task_id = enqueue(alice, "add", x=20, y=22)
    assert result(alice, task_id)["result"] == 42
    theirs = bob.get(f"/api/tasks/{task_id}")
    unknown = bob.get(f"/api/tasks/{uuid.uuid4()}")
    assert theirs.status_code == unknown.status_code == 404
    assert theirs.json() == unknown.json() == {"error": "task not found"}
    ttl = app_redis().ttl(task_owners.owner_key(task_id))
    assert 0 < ttl <= task_owners.owner_ttl()
    assert task_owners.owner_ttl() == (
        django_settings.CELERY_RESULT_EXPIRES
        + django_settings.APP_MAX_COUNTDOWN
        + django_settings.CELERY_TASK_TIME_LIMIT
    )


def test_a_task_sent_without_an_owner_is_nobodys_to_read(alice: Client) -> None:
    sent = tasks.add.delay(1, 1)
    assert sent.get(timeout=10) == 2
    assert alice.get(f"/api/tasks/{sent.id}").status_code == 404


def test_payments_touch_only_the_callers_own_ledger(
    alice: Client, bob: Client, uid: str
) -> None:
    """Same account name, same payment id, two clients: two ledgers, each
    payment applied once in its own; an amount-0 call shows only the
    caller's own balance."""
    r = app_redis()
    account, payment = f"acct-{uid}", f"pay-{uid}"
    a = enqueue(alice, "record_payment", payment_id=payment, account=account, amount=7)
    b = enqueue(bob, "record_payment", payment_id=payment, account=account, amount=100)
    assert result(alice, a)["result"] == {
        "applied": True,
        "account": account,
        "balance": 7,
    }
    assert result(bob, b)["result"]["balance"] == 100
    assert r.hget(tasks.ledger_key("alice"), account) == "7"
    assert r.hget(tasks.ledger_key("bob"), account) == "100"
    assert r.hget(tasks.LEDGER_KEY, account) is None
    peek = enqueue(
        alice, "record_payment", payment_id=f"peek-{uid}", account=account, amount=0
    )
    assert result(alice, peek)["result"]["balance"] == 7
    again = enqueue(
        alice, "record_payment", payment_id=payment, account=account, amount=7
    )
    assert result(alice, again)["result"] == {
        "applied": False,
        "account": account,
        "balance": 7,
    }
    marker = tasks.payment_marker_key("alice", payment)
    assert marker == f"app:task:payment:done:alice:{payment}"
    for key in (marker, tasks.ledger_key("alice")):
        assert 0 < r.ttl(key) <= django_settings.APP_LEDGER_TTL


@pytest.fixture
def ledger_client(tmp_path: Path, settings, uid: str) -> tuple[str, Client]:
    """A client of this test's own (a fresh, empty ledger)."""
    name, token = f"led-{uid}", secrets.token_urlsafe(32)
    path = tmp_path / "api-tokens"
    write_token_file(path, {name: (token,)})
    settings.APP_API_TOKENS_FILE = str(path)
    return name, api_client(token)


def test_a_ledger_holds_at_most_max_accounts(
    ledger_client: tuple[str, Client], uid: str
) -> None:
    """A new account beyond APP_LEDGER_MAX_ACCOUNTS (test settings: 20) fails
    with LedgerFullError and sets no marker; known accounts still move."""
    name, client = ledger_client
    r = app_redis()
    most = django_settings.APP_LEDGER_MAX_ACCOUNTS
    ids = [
        enqueue(client, "record_payment", payment_id=f"p{i}", account=f"a{i}", amount=1)
        for i in range(most)
    ]
    assert all(result(client, i)["state"] == "SUCCESS" for i in ids)
    full = enqueue(
        client, "record_payment", payment_id="p-new", account="a-new", amount=1
    )
    body = result(client, full)
    assert (body["state"], body["error"]) == ("FAILURE", "LedgerFullError")
    assert r.hlen(tasks.ledger_key(name)) == most
    assert not r.exists(tasks.payment_marker_key(name, "p-new"))
    known = enqueue(client, "record_payment", payment_id="p-0b", account="a0", amount=1)
    assert result(client, known)["result"]["balance"] == 2


def test_a_message_without_a_client_uses_the_shared_ledger(uid: str) -> None:
    """What a version before per-client ledgers enqueued (a rolling upgrade)
    or a shell sends: applied once, to app:task:ledger; the API never sends
    one (record_payment's client comes from the token)."""
    r = app_redis()
    first = tasks.record_payment.delay(f"legacy-{uid}", f"acct-{uid}", 3).get(
        timeout=10
    )
    again = tasks.record_payment.delay(f"legacy-{uid}", f"acct-{uid}", 3).get(
        timeout=10
    )
    assert (first["applied"], again["applied"]) == (True, False)
    assert r.hget(tasks.LEDGER_KEY, f"acct-{uid}") == "3"
    assert r.exists(tasks.payment_marker_key(None, f"legacy-{uid}"))


def test_flaky_counts_each_clients_attempts_apart(
    alice: Client, bob: Client, uid: str
) -> None:
    r = app_redis()
    key = f"k-{uid}"
    a = enqueue(alice, "flaky", key=key, failures=1)
    b = enqueue(bob, "flaky", key=key, failures=1)
    assert result(alice, a)["result"] == {"attempts": 2, "retries": 1}
    assert result(bob, b)["result"] == {"attempts": 2, "retries": 1}
    assert r.get(tasks.flaky_counter_key("alice", key)) == "2"
    assert r.get(tasks.flaky_counter_key("bob", key)) == "2"
    assert tasks.flaky_counter_key("alice", key) == f"app:task:flaky:alice:{key}"


@pytest.mark.parametrize("demo_rules", [False, True], ids=["demo-off", "demo-on"])
@pytest.mark.parametrize(
    "name",
    ["work_ms", "poison", "depends_on", "Poison", "WORK_MS", "dlq_reason", "DLQ_x"],
)
def test_no_api_call_reaches_a_demo_failure_knob(
    alice: Client, settings, demo_rules: bool, name: str
) -> None:
    """Refused with 400 naming the field whatever APP_STREAM_DEMO_FAILURES
    says, and nothing is added to the stream (demos XADD such entries as an
    admin)."""
    settings.APP_STREAM_DEMO_FAILURES = demo_rules
    r: redis.Redis = app_redis()
    stream = django_settings.APP_STREAM
    last = r.xrevrange(stream, count=1)
    response = post(alice, "/api/stream", {"fields": {"order": "1", name: "5000"}})
    assert response.status_code == 400
    assert response.json() == {
        "error": f"field name {name!r} is reserved (demo failure rules and "
        "dead-letter fields are not accepted through the API)"
    }
    assert r.xrevrange(stream, count=1) == last


def test_hold_seconds_is_not_an_api_argument(alice: Client) -> None:
    args = {"payment_id": "p", "account": "a", "amount": 1, "hold_seconds": 30}
    response = post(alice, "/api/tasks", {"task": "record_payment", "args": args})
    assert response.status_code == 400
    assert "hold_seconds" in response.json()["error"]
