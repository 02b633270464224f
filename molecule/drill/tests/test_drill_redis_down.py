"""Drill: redis-server stopped; the runbook's fix brings it back with its data.

Runbook: docs/runbooks/redis-down.md
"""

from conftest import SERVER
from drill_lib import REPO, fingerprint, ops_ok, ping, seed
from redis_testlib import run_playbook


def test_stopped_redis_is_reported_by_status(server):
    server.check_output("systemctl stop redis-server")
    try:
        out = ops_ok("status")
        assert "NOT ANSWERING" in out
        assert "inactive/dead" in out
    finally:
        server.check_output("systemctl start redis-server")


def test_stopped_redis_comes_back_with_data_after_converge(server, remote, users):
    seed(server, "app:down")
    before = fingerprint(server, "app:down:*")
    server.check_output("systemctl stop redis-server")
    assert "Connection refused" in remote.out("app_data", users["app_data"]["password"], "PING")

    # The runbook's fix: converge the Redis layer (starts it, puts config back).
    out = run_playbook(REPO / "playbooks" / "redis.yml", limit=SERVER)
    assert "failed=0" in out
    assert ping(server) == "PONG"
    assert remote.out("app_data", users["app_data"]["password"], "GET", "app:down:s:7") == "v7"
    assert fingerprint(server, "app:down:*") == before
