"""App drills through the deployed services on app-drill (web, beat, workers,
consumers) against redis-drill.

Runbooks: docs/runbooks/redis-down.md (workers after a Redis outage),
celery-backlog.md (restart-workers.yml), stream-lag-dlq.md (replay-dlq.yml),
app-deploy-rollback.md (rollback.yml's refusals; the rollback under load runs in
the app scenario, after the deploy it rolls back).
"""

import re
import uuid

from redisops_testlib.api import AUTH, ApiLoop, enqueue, http, summary, task_states
from redisops_testlib.drill import wait_fsync
from redisops_testlib.playbooks import run_playbook
from redisops_testlib.polling import wait_for
from redisops_testlib.redis_cli import admin
from redisops_testlib.scenario import REPO

STREAM = "app:stream:events"
DLQ = f"{STREAM}:dlq"
EFFECTS = f"{STREAM}:effects"
WORKER = "redisops-worker@{}.service"
# Long-running Redis clients that must outlive a Redis outage.
CONSUMERS = ["redisops-stream-consumer.service", "redisops-pubsub-listener.service"]


def _all_succeeded(host, base_url: str, ids=(), loop=None, timeout: float = 120) -> dict[str, int]:
    """Wait until every task (ids, and those the loop recorded) succeeded; their states."""

    def states() -> dict[str, int]:
        counts = task_states(host, base_url, ids, loop)
        assert set(counts) == {"SUCCESS"}, counts
        return counts

    return wait_for(states, timeout=timeout, interval=2)


def _all_active(host) -> dict[str, str]:
    states = {u: host.run(f"systemctl is-active {u}").stdout.strip() for u in CONSUMERS}
    assert set(states.values()) == {"active"}, f"not back after the outage: {states}"
    return states


def test_redis_outage_workers_recover_and_queued_tasks_run(server, app_host, base_url, ops):
    heavy, default = WORKER.format("heavy"), WORKER.format("default")
    app_host.check_output(f"systemctl stop {heavy}")
    try:
        # Tasks wait in the broker queue (no heavy worker), acknowledged by the API.
        queued = [enqueue(app_host, base_url, "heavy_checksum", {"size_kib": 4, "rounds": 3}) for _ in range(5)]
        assert admin(server, "LLEN", "broker:heavy") == "5"
        wait_fsync(server)

        # The fault: Redis stops. A worker starts meanwhile (it must keep retrying).
        server.check_output("systemctl stop redis-server")
        app_host.check_output(f"systemctl start {heavy}")
        assert http(app_host, "GET", f"{base_url}/readyz", headers=AUTH)["status"] == 503

        # The runbook's fix: converge the Redis layer.
        run_playbook(REPO / "playbooks" / "redis.yml", limit=ops.host)

        # The queued tasks run, and the worker that lived through the outage
        # takes new ones.
        states = _all_succeeded(app_host, base_url, queued)
        print(f"redis outage: queued tasks after the restart: {states}")
        fresh = enqueue(app_host, base_url, "add", {"x": 40, "y": 2})
        _all_succeeded(app_host, base_url, [fresh], timeout=60)
        assert (app_host.service(default).is_running, app_host.service(heavy).is_running) == (True, True)
        wait_for(lambda: http(app_host, "GET", f"{base_url}/readyz", headers=AUTH)["status"] == 200, timeout=60)
        # The stream consumer and the Pub/Sub listener came back by themselves.
        wait_for(lambda: _all_active(app_host), timeout=60)
    finally:
        server.run("systemctl start redis-server")
        app_host.run(f"systemctl start {heavy}")
        # Whatever the outcome, the next drills need them.
        for unit in CONSUMERS:
            app_host.run(f"systemctl reset-failed {unit}; systemctl start {unit}")


def test_rolling_worker_restart_under_load_loses_no_task(app_host, base_url, ops):
    loop = ApiLoop(app_host, base_url, "task")
    try:
        loop.wait_ok(20)
        out = ops.ok("restart-workers", limit="all")
        assert re.search(r"restarted \S+worker@default\.service \(pid (\d+) -> (?!\1\))\d+\)", out), out
        loop.wait_ok(20)
    finally:
        stats = loop.stop()
    print(f"restart under load: {summary(stats)}")
    assert stats["failed"] == 0, stats["errors"][:5]
    states = _all_succeeded(app_host, base_url, loop=loop, timeout=180)
    print(f"restart under load: {stats['ok']} tasks enqueued, states {states}")


def test_dead_letters_are_replayed_once_the_cause_is_gone(server, app_host, base_url, ops):
    wait_for(lambda: app_host.service(CONSUMERS[0]).is_running)
    tag = uuid.uuid4().hex[:8]
    dependency = f"drill-{tag}"
    admin(server, "SET", f"app:outage:{dependency}", "1")
    try:
        # A downstream is down: these entries fail until they are dead-lettered.
        produced = []
        for i in range(3):
            # A demo knob: no API call may carry it, the admin adds the entry
            # (the consumer runs with APP_STREAM_DEMO_FAILURES=true here).
            produced.append(admin(server, "XADD", STREAM, "*", "depends_on", dependency, "drill", f"{tag}-{i}"))
        wait_for(lambda: int(admin(server, "XLEN", DLQ)) >= 3, timeout=120, interval=1)
        assert int(admin(server, "XLEN", DLQ)) == 3
        assert admin(server, "HMGET", EFFECTS, *produced).split() == []  # never applied

        out = ops.ok("replay-dlq", {"replay_dlq_dry_run": True}, limit="all")
        assert "DependencyDownError" in out, out
        assert f"{dependency}: still DOWN" in out, out
        assert int(admin(server, "XLEN", DLQ)) == 3  # a dry run moves nothing

        # The cause is gone: replay.
        admin(server, "DEL", f"app:outage:{dependency}")
        out = ops.ok("replay-dlq", limit="all")
        moved = re.findall(rf"moved \S+ -> {STREAM} (\d+-\d+)", out)
        assert len(moved) == 3, out
        assert "replay_dlq: moved 3 entries" in out, out
        # Each replayed entry is processed exactly once.
        wait_for(lambda: admin(server, "HMGET", EFFECTS, *moved).split() == ["1", "1", "1"], timeout=60)
        assert int(admin(server, "XLEN", DLQ)) == 0
        again = ops.ok("replay-dlq", limit="all")
        assert "replay_dlq: moved 0 entries" in again
        assert admin(server, "HMGET", EFFECTS, *moved).split() == ["1", "1", "1"]
    finally:
        admin(server, "DEL", f"app:outage:{dependency}")


def test_rollback_refuses_without_a_release_to_go_back_to(app_host, ops):
    """One release installed (the converge's): no previous release to go back to,
    and a version that is not installed; each refused, nothing changed."""
    venv = app_host.file("/opt/redisops/venv").linked_to
    for extra, reason in (
        (None, "No previous release recorded on"),
        ({"django_app_rollback_to": "9.9.9"}, "Version 9.9.9 is not installed on"),
    ):
        proc = ops.run("rollback", extra, limit="all")
        assert proc.returncode != 0
        assert reason in proc.stdout, proc.stdout[-2000:]
        assert "Nothing was changed" in proc.stdout
    assert app_host.file("/opt/redisops/venv").linked_to == venv
