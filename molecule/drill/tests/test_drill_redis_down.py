"""Drill: redis-server stopped; the runbook's fix brings it back with its data.

Runbook: docs/runbooks/redis-down.md
"""

from redisops_testlib.drill import fingerprint, seed
from redisops_testlib.playbooks import run_playbook
from redisops_testlib.redis_cli import ping
from redisops_testlib.scenario import REPO


def test_stopped_redis_is_reported_by_status_and_not_backed_up(server, ops, tmp_path):
    server.check_output("systemctl stop redis-server")
    try:
        out = ops.ok("status")
        assert "NOT ANSWERING" in out
        assert "inactive/dead" in out
        proc = ops.run("backup-redis", {"redis_server_backup_root": str(tmp_path)})
        assert proc.returncode != 0
        assert "a BGSAVE needs a running Redis" in proc.stdout, proc.stdout[-2000:]
        assert list(tmp_path.iterdir()) == []
    finally:
        server.check_output("systemctl start redis-server")


def test_stopped_redis_comes_back_with_data_after_converge(server, remote, users, ops):
    seed(server, "app:down")
    before = fingerprint(server, "app:down:*")
    server.check_output("systemctl stop redis-server")
    assert "Connection refused" in remote.out("app_data", users["app_data"]["password"], "PING")

    # The runbook's fix: converge the Redis layer (starts it, puts config back).
    out = run_playbook(REPO / "playbooks" / "redis.yml", limit=ops.host)
    assert "failed=0" in out
    assert ping(server) == "PONG"
    assert remote.out("app_data", users["app_data"]["password"], "GET", "app:down:s:7") == "v7"
    assert fingerprint(server, "app:down:*") == before
