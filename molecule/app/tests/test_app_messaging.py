"""Pub/Sub and Streams through the deployed services."""

import uuid

from redisops_testlib.api import AUTH, http
from redisops_testlib.polling import wait_for
from redisops_testlib.redis_cli import admin


def test_pubsub_from_web_reaches_the_listener_service(web, worker, base_url):
    listeners = wait_for(lambda: http(web, "GET", f"{base_url}/api/pubsub", headers=AUTH)["json"]["listeners"])
    assert worker.backend.name in listeners or any("worker" in name for name in listeners)
    token = uuid.uuid4().hex
    r = http(web, "POST", f"{base_url}/api/publish", {"topic": "test", "message": token}, AUTH)
    assert r["status"] == 200, r["body"]
    assert r["json"]["receivers"] >= 1

    def recorded():
        received = http(web, "GET", f"{base_url}/api/pubsub?count=100", headers=AUTH)["json"]["received"]
        return any(m.get("data") == token for m in received)

    wait_for(recorded)


def test_stream_entry_is_processed_and_acked_by_the_consumer(web, redis, base_url):
    r = http(web, "POST", f"{base_url}/api/stream", {"fields": {"probe": uuid.uuid4().hex}}, AUTH)
    assert r["status"] == 201
    entry = r["json"]["id"]
    wait_for(lambda: admin(redis, "HGET", "app:stream:events:effects", entry) == "1")
    pending = admin(redis, "XPENDING", "app:stream:events", "workers", entry, entry, "10")
    assert pending == ""


def test_consumer_killed_mid_entry_still_processes_it_once(web, worker, redis, base_url):
    unit = "redisops-stream-consumer.service"
    # The demo's slow entry: no API call may carry the knob, so it goes in as the
    # admin (the consumer runs with APP_STREAM_DEMO_FAILURES=true here).
    entry = admin(redis, "XADD", "app:stream:events", "*", "work_ms", "4000")
    # Delivered to the consumer (pending), not yet committed: kill it now.
    wait_for(lambda: entry in admin(redis, "XPENDING", "app:stream:events", "workers", "-", "+", "100"))
    old_pid = worker.service(unit).systemd_properties["MainPID"]
    worker.check_output(f"systemctl kill --signal=KILL {unit}")
    # systemd restarts it; the new process re-reads its own pending entries.
    wait_for(lambda: worker.service(unit).systemd_properties["MainPID"] not in ("0", old_pid), timeout=20)
    wait_for(lambda: admin(redis, "HGET", "app:stream:events:effects", entry) == "1", timeout=30)
    assert admin(redis, "XPENDING", "app:stream:events", "workers", entry, entry, "10") == ""
