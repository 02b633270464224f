"""App drills through the deployed services on app-drill (web, beat, workers,
consumers) against redis-drill.

Runbooks: docs/runbooks/redis-down.md (workers after a Redis outage),
celery-backlog.md (restart-workers.yml), stream-lag-dlq.md (replay-dlq.yml),
app-deploy-rollback.md (rollback.yml).
"""

import json
import os
import re
import subprocess
import uuid

from app_http import HTTPS, http
from conftest import REPO, SERVER
from drill_lib import ApiLoop, admin, ops_ok, wait_fsync
from redis_testlib import run_playbook, wait_for

STREAM = "app:stream:events"
DLQ = f"{STREAM}:dlq"
EFFECTS = f"{STREAM}:effects"
WORKER = "redisops-worker@{}.service"
# Long-running Redis clients that must outlive a Redis outage.
CONSUMERS = ["redisops-stream-consumer.service", "redisops-pubsub-listener.service"]

# Reads the results of the given task ids through the API, on the app host;
# prints {state: count}.
RESULTS = r"""
import json, sys, urllib.request
base, ids = sys.argv[1], json.load(open(sys.argv[2]))
states = {}
for i in ids:
    req = urllib.request.Request(base + "/api/tasks/" + i, headers={"X-Forwarded-Proto": "https"})
    state = json.loads(urllib.request.urlopen(req, timeout=10).read())["state"]
    states[state] = states.get(state, 0) + 1
print(json.dumps(states))
"""


def _enqueue(host, base_url: str, task: str, args: dict) -> str:
    r = http(host, "POST", f"{base_url}/api/tasks", {"task": task, "args": args}, HTTPS)
    assert r["status"] == 202, r["body"]
    return r["json"]["task_id"]


def _states(host, base_url: str, ids: list[str]) -> dict[str, int]:
    tag = uuid.uuid4().hex[:8]
    host.run(f"cat > /tmp/results-{tag}.py <<'EOF'\n{RESULTS}\nEOF")
    host.run(f"cat > /tmp/results-{tag}.json <<'EOF'\n{json.dumps(ids)}\nEOF")
    return json.loads(host.check_output(f"python3 /tmp/results-{tag}.py {base_url} /tmp/results-{tag}.json"))


def _all_succeeded(host, base_url: str, ids: list[str], timeout: float = 120) -> dict[str, int]:
    return wait_for(lambda: (s := _states(host, base_url, ids)).get("SUCCESS") == len(ids) and s,
                    timeout=timeout, interval=2)


def _unit_states(host) -> dict[str, str]:
    return {u: host.run(f"systemctl is-active {u}").stdout.strip() for u in CONSUMERS}


def _version(host, base_url: str) -> str:
    return http(host, "GET", f"{base_url}/version", headers=HTTPS)["json"]["version"]


def test_redis_outage_workers_recover_and_queued_tasks_run(server, app_host, base_url):
    heavy, default = WORKER.format("heavy"), WORKER.format("default")
    app_host.check_output(f"systemctl stop {heavy}")
    try:
        # Tasks wait in the broker queue (no heavy worker), acknowledged by the API.
        queued = [_enqueue(app_host, base_url, "heavy_checksum", {"size_kib": 4, "rounds": 3}) for _ in range(5)]
        assert admin(server, "LLEN", "broker:heavy") == "5"
        wait_fsync(server)

        # The fault: Redis stops. A worker starts meanwhile (it must keep retrying).
        server.check_output("systemctl stop redis-server")
        app_host.check_output(f"systemctl start {heavy}")
        assert http(app_host, "GET", f"{base_url}/readyz", headers=HTTPS)["status"] == 503

        # The runbook's fix: converge the Redis layer.
        run_playbook(REPO / "playbooks" / "redis.yml", limit=SERVER)

        # The queued tasks run, and the worker that lived through the outage
        # takes new ones.
        states = _all_succeeded(app_host, base_url, queued)
        print(f"redis outage: queued tasks after the restart: {states}")
        fresh = _enqueue(app_host, base_url, "add", {"x": 40, "y": 2})
        _all_succeeded(app_host, base_url, [fresh], timeout=60)
        assert app_host.service(default).is_running and app_host.service(heavy).is_running
        wait_for(lambda: http(app_host, "GET", f"{base_url}/readyz", headers=HTTPS)["status"] == 200, timeout=60)
        # The stream consumer and the Pub/Sub listener came back by themselves.
        try:
            wait_for(lambda: set(_unit_states(app_host).values()) == {"active"}, timeout=60)
        except AssertionError:
            raise AssertionError(f"not back after the outage: {_unit_states(app_host)}") from None
    finally:
        server.run("systemctl start redis-server")
        app_host.run(f"systemctl start {heavy}")
        # Whatever the outcome, the next drills need them.
        for unit in CONSUMERS:
            app_host.run(f"systemctl reset-failed {unit}; systemctl start {unit}")


def test_rolling_worker_restart_under_load_loses_no_task(app_host, base_url):
    loop = ApiLoop(app_host, base_url, "task")
    try:
        loop.wait_ok(20)
        out = ops_ok("restart-workers", limit=None)
        assert re.search(r"restarted \S+worker@default\.service \(pid (\d+) -> (?!\1\))\d+\)", out), out
        loop.wait_ok(20)
    finally:
        stats = loop.stop()
    assert stats["failed"] == 0, stats["errors"][:5]
    states = _all_succeeded(app_host, base_url, stats["ids"], timeout=180)
    print(f"restart under load: {stats['ok']} tasks enqueued, states {states}")


def test_dead_letters_are_replayed_once_the_cause_is_gone(server, app_host, base_url):
    wait_for(lambda: app_host.service(CONSUMERS[0]).is_running)
    tag = uuid.uuid4().hex[:8]
    dependency = f"drill-{tag}"
    admin(server, "SET", f"app:outage:{dependency}", "1")
    try:
        # A downstream is down: these entries fail until they are dead-lettered.
        produced = []
        for i in range(3):
            fields = {"depends_on": dependency, "drill": f"{tag}-{i}"}
            r = http(app_host, "POST", f"{base_url}/api/stream", {"fields": fields}, HTTPS)
            assert r["status"] == 201, r["body"]
            produced.append(r["json"]["id"])
        wait_for(lambda: int(admin(server, "XLEN", DLQ)) >= 3, timeout=120, interval=1)
        assert int(admin(server, "XLEN", DLQ)) == 3
        assert admin(server, "HMGET", EFFECTS, *produced).split() == []  # never applied

        out = ops_ok("replay-dlq", {"replay_dlq_dry_run": True}, limit=None)
        assert "DependencyDownError" in out and f"{dependency}: still DOWN" in out, out
        assert int(admin(server, "XLEN", DLQ)) == 3  # a dry run moves nothing

        # The cause is gone: replay.
        admin(server, "DEL", f"app:outage:{dependency}")
        out = ops_ok("replay-dlq", limit=None)
        moved = re.findall(rf"moved \S+ -> {STREAM} (\d+-\d+)", out)
        assert len(moved) == 3 and "replay_dlq: moved 3 entries" in out, out
        # Each replayed entry is processed exactly once.
        wait_for(lambda: admin(server, "HMGET", EFFECTS, *moved).split() == ["1", "1", "1"], timeout=60)
        assert int(admin(server, "XLEN", DLQ)) == 0
        again = ops_ok("replay-dlq", limit=None)
        assert "replay_dlq: moved 0 entries" in again
        assert admin(server, "HMGET", EFFECTS, *moved).split() == ["1", "1", "1"]
    finally:
        admin(server, "DEL", f"app:outage:{dependency}")


def test_rollback_brings_back_the_previous_version(app_host, base_url):
    current = (REPO / "django_app" / "VERSION").read_text().strip()
    newer = "0.1.2"
    assert newer != current
    subprocess.run([str(REPO / "django_app" / "scripts" / "wheelhouse.sh")], check=True, timeout=300,
                   env={**os.environ, "APP_VERSION": newer, "WHEELHOUSE_APP_ONLY": "1"})
    run_playbook(REPO / "playbooks" / "site.yml", {"django_app_version": newer}, tags="django_app", limit="app")
    assert _version(app_host, base_url) == newer

    loop = ApiLoop(app_host, base_url, "stream")
    try:
        loop.wait_ok(20)
        out = ops_ok("rollback", limit=None)
        assert f"runs {current}-" in out, out
        loop.wait_ok(20)
    finally:
        stats = loop.stop()
    assert _version(app_host, base_url) == current
    print(f"rollback {newer} -> {current}: {stats['ok']} API requests ok, {stats['failed']} failed")
    assert stats["failed"] == 0, stats["errors"][:5]
