"""Restarting redis-server under a stream of tasks loses none of them.

A restart (SHUTDOWN) fsyncs the AOF, so the queue and every applied effect
survive. Before it, redis-quiesce takes the right to pop from every client (a
task popped in Redis's last moments, not yet recorded as unacknowledged, would
be lost: celery/kombu#305): the workers stop on that and systemd starts them
again; the API keeps accepting tasks (its publish retries outlast the restart). Tasks use no countdown: an
ETA task a worker holds when the connection drops stays in the broker's
unacked set until visibility_timeout (1 h) before it is redelivered.
"""

import contextlib
import uuid

from redisops_testlib.api import AUTH, ApiLoop, enqueue, http, summary
from redisops_testlib.hosts import journal
from redisops_testlib.polling import wait_for
from redisops_testlib.redis_cli import admin

# The tests' client's own ledger and processed-once markers.
LEDGER = "app:task:ledger:tests"
MARKERS = "app:task:payment:done:tests:"
WORKER_UNITS = ["redisops-worker@default.service", "redisops-worker@heavy.service"]


def _active(worker) -> bool:
    return all(worker.service(u).is_running for u in WORKER_UNITS)


def test_no_task_is_lost_when_redis_restarts(web, worker, redis, base_url):
    account = f"restart-{uuid.uuid4().hex[:8]}"
    n = 60
    # n payments of 1 to one account through the API, 50 ms apart.
    producer = ApiLoop(worker, base_url, "payment", seconds=120, count=n, account=account)
    try:
        # Ten tasks in, the rest while Redis stops, starts and loads its AOF.
        producer.wait_ok(10, timeout=30)
        since = redis.check_output("date +@%s")
        redis.check_output("systemctl restart redis-server.service")
    finally:
        stats = producer.finish(timeout=120)
    print(f"redis restart under tasks: {summary(stats)}")
    accepted = stats["ids"]
    assert len(accepted) >= 10

    # Redis 7.0-8.x replays the AOF's MULTI/EXEC blocks (also Lua effects)
    # as the default user and drops them if that user may not run them.
    log = journal(redis, "redis-server.service", since=since)
    assert "AOF-loading-client" not in log, log[-2000:]

    # Every accepted payment applied, each exactly once (all are of 1).
    markers = [f"{MARKERS}{payment}" for payment in accepted]
    count = "return redis.call('EXISTS', unpack(KEYS))"

    def applied() -> bool:
        return admin(redis, "EVAL", count, str(len(markers)), *markers) == str(len(accepted))

    with contextlib.suppress(AssertionError):
        wait_for(applied, timeout=60)
    assert applied(), "accepted tasks lost"
    every = admin(redis, "EVAL", "return #redis.call('KEYS', ARGV[1])", "0", f"{MARKERS}{account}-*")
    assert admin(redis, "HGET", LEDGER, account) == every

    # The workers are back (systemd) and serve both queues.
    wait_for(lambda: _active(worker), timeout=60)
    task_id = enqueue(web, base_url, "heavy_checksum", {"size_kib": 1, "rounds": 1})
    wait_for(lambda: http(web, "GET", f"{base_url}/api/tasks/{task_id}", headers=AUTH)["json"]["state"] == "SUCCESS")
    # The API rode out the restart: no enqueue was refused.
    assert (stats["requests"], stats["failed"]) == (n, 0), stats["errors"]
