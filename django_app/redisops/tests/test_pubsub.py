"""Pub/Sub: subscribe first and wait for the confirmation, then publish."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import redis
from django.conf import settings

from redisops import pubsub
from redisops.tests.conftest import manage, wait_for
from redisops.tests.redis_proc import RedisProcess, free_port


def recorded(r: redis.Redis, token: str, stream: str) -> list[dict[str, str]]:
    return [x for x in pubsub.received(r, stream, 1000) if x.get("data") == token]


def test_message_published_after_confirmed_subscription_arrives(
    r: redis.Redis, uid: str
) -> None:
    sub = r.pubsub(ignore_subscribe_messages=False)
    pubsub.subscribe_confirmed(sub, pubsub.channel_for(uid))
    assert pubsub.publish(r, uid, "hello") == 1
    msg = wait_for(lambda: sub.get_message(timeout=0.1), what="message")
    assert msg["type"] == "message"
    assert msg["data"] == "hello"
    sub.close()


def test_only_the_declared_pattern_may_be_psubscribed(r: redis.Redis, uid: str) -> None:
    sub = r.pubsub(ignore_subscribe_messages=False)
    pubsub.subscribe_confirmed(sub, pubsub.redis_acl.PUBSUB_PATTERN)
    other = r.pubsub(ignore_subscribe_messages=False)
    with pytest.raises(redis.exceptions.NoPermissionError):
        pubsub.subscribe_confirmed(other, pubsub.channel_for(f"{uid}.*"))
    sub.close()
    other.close()


def test_publish_without_subscribers_is_dropped(r: redis.Redis, uid: str) -> None:
    """Pub/Sub keeps nothing: a later subscriber never sees this message."""
    assert pubsub.publish(r, f"nobody-{uid}", "lost") == 0
    sub = r.pubsub(ignore_subscribe_messages=False)
    pubsub.subscribe_confirmed(sub, pubsub.channel_for(f"nobody-{uid}"))
    assert sub.get_message(timeout=0.3) is None
    sub.close()


def test_listener_records_messages_published_through_the_api(
    r: redis.Redis, uid: str, spawn, alice
) -> None:
    record = f"app:pubsub:test-{uid}"
    proc = spawn(
        manage("pubsub_listener", "--name", f"L-{uid}", "--record-stream", record),
        name="listener",
    )
    wait_for(lambda: f"L-{uid}" in pubsub.listeners(r), timeout=20, what="listener")
    token = uuid.uuid4().hex
    response = alice.post(
        "/api/publish",
        data=json.dumps({"topic": "demo", "message": token}),
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["receivers"] >= 1
    [entry] = wait_for(lambda: recorded(r, token, record), what="record")
    assert entry["channel"] == "app:events:demo"
    assert entry["listener"] == f"L-{uid}"
    proc.stop()
    assert f"L-{uid}" not in pubsub.listeners(r)


def test_listener_resubscribes_after_redis_restart(
    uid: str, spawn, tmp_path: Path
) -> None:
    server = RedisProcess(free_port(), tmp_path / "own-redis")
    server.start()
    try:
        url = server.url("app_data")
        app = redis.Redis.from_url(url, decode_responses=True)
        record = f"app:pubsub:restart-{uid}"
        spawn(
            manage("pubsub_listener", "--name", "R", "--record-stream", record),
            name="listener-restart",
            REDIS_TEST_APP_URL=url,
        )
        wait_for(lambda: "R" in pubsub.listeners(app), timeout=20, what="listener")
        server.restart()  # no persistence: presence and records are gone
        app = redis.Redis.from_url(url, decode_responses=True)
        wait_for(lambda: "R" in pubsub.listeners(app), timeout=20, what="re-subscribe")
        token = uuid.uuid4().hex
        assert pubsub.publish(app, "after-restart", token) == 1
        wait_for(lambda: recorded(app, token, record), what="record after restart")
    finally:
        server.stop()


def test_listener_default_pattern_is_the_declared_one() -> None:
    assert settings.APP_PUBSUB_RECORD_STREAM.startswith("app:")
    assert pubsub.channel_for("x").startswith(
        pubsub.redis_acl.PUBSUB_PATTERN.rstrip("*")
    )
