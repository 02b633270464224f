"""Restarting redis-server under a stream of tasks loses none of them.

A restart (SHUTDOWN) fsyncs the AOF, so the queue and every applied effect
survive; the workers reconnect by themselves, and the API keeps accepting
tasks (its publish retries outlast the restart). Tasks use no countdown: an
ETA task a worker holds when the connection drops stays in the broker's
unacked set until visibility_timeout (1 h) before it is redelivered.
"""

import contextlib
import json
import shlex
import threading
import uuid

from app_testlib import HTTPS, http, journal, redis_admin, wait_for

LEDGER = "app:task:ledger"
WORKER_UNITS = ["redisops-worker@default.service", "redisops-worker@heavy.service"]

# Enqueue n payments of 1 to one account through the API, 50 ms apart;
# print each answer's status.
_PRODUCER = r"""
import json, sys, time, urllib.request, urllib.error
base, account, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
hdrs = {"X-Forwarded-Proto": "https", "Content-Type": "application/json"}
statuses = []
for i in range(n):
    body = {"task": "record_payment", "args": {"payment_id": f"{account}-{i}", "account": account, "amount": 1}}
    try:
        resp = urllib.request.urlopen(urllib.request.Request(base + "/api/tasks", json.dumps(body).encode(), hdrs), timeout=15)
        statuses.append(resp.status)
    except urllib.error.HTTPError as e:
        statuses.append(e.code)
    except OSError:
        statuses.append(0)
    if i == 9:
        open(sys.argv[4], "w").close()
    time.sleep(0.05)
print(json.dumps(statuses))
"""


def _main_pids(worker) -> list[str]:
    return [worker.check_output(f"systemctl show -p MainPID --value {u}") for u in WORKER_UNITS]


def test_no_task_is_lost_when_redis_restarts(web, worker, redis, base_url):
    account = f"restart-{uuid.uuid4().hex[:8]}"
    n = 60
    pids = _main_pids(worker)
    started = f"/tmp/producer-{account}"
    out: dict = {}
    producer = threading.Thread(target=lambda: out.update(r=worker.run(
        f"python3 -c {shlex.quote(_PRODUCER)} {base_url} {account} {n} {started}")))
    producer.start()
    try:
        # Ten tasks in, the rest while Redis stops, starts and loads its AOF.
        wait_for(lambda: worker.file(started).exists, timeout=30)
        since = redis.check_output("date +@%s")
        redis.check_output("systemctl restart redis-server.service")
    finally:
        producer.join(timeout=120)
    assert out["r"].rc == 0, out["r"].stderr
    statuses = json.loads(out["r"].stdout)
    accepted = [i for i, status in enumerate(statuses) if status == 202]
    assert len(accepted) >= 10

    # Redis 7.0-8.x replays the AOF's MULTI/EXEC blocks (also Lua effects)
    # as the default user and drops them if that user may not run them.
    log = journal(redis, "redis-server.service", since=since)
    assert "AOF-loading-client" not in log, log[-2000:]

    # Every accepted payment applied, each exactly once (all are of 1).
    markers = [f"app:task:payment:done:{account}-{i}" for i in accepted]
    count = "return redis.call('EXISTS', unpack(KEYS))"

    def applied() -> bool:
        return redis_admin(redis, "EVAL", count, str(len(markers)), *markers) == str(len(accepted))

    with contextlib.suppress(AssertionError):
        wait_for(applied, timeout=60)
    assert applied(), "accepted tasks lost"
    every = redis_admin(redis, "EVAL", "return #redis.call('KEYS', ARGV[1])", "0",
                        f"app:task:payment:done:{account}-*")
    assert redis_admin(redis, "HGET", LEDGER, account) == every

    # The workers reconnected (same processes, not restarted by systemd) and
    # serve both queues.
    assert _main_pids(worker) == pids
    r = http(web, "POST", f"{base_url}/api/tasks", {"task": "heavy_checksum", "args": {"size_kib": 1, "rounds": 1}},
             HTTPS)
    task_id = r["json"]["task_id"]
    wait_for(lambda: http(web, "GET", f"{base_url}/api/tasks/{task_id}", headers=HTTPS)["json"]["state"] == "SUCCESS")
    # The API rode out the restart: no enqueue was refused.
    assert statuses == [202] * n, statuses
