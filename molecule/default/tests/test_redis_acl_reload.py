"""Changing ACL users applies live: same PID, an open connection keeps working."""

import copy
import uuid

from redisops_testlib.playbooks import run_playbook
from redisops_testlib.redis_cli import HeldConnection

ACL_TAGS = "redis_server:acl"


def test_acl_change_applies_without_restart(server, remote, users, scenario):
    pid_before = server.check_output("systemctl show -p MainPID --value redis-server")
    # A long-lived client on the client host, opened before the change.
    held = HeldConnection(remote, "app", users["app"]["password"], uuid.uuid4().hex[:8])
    assert held.opened() == "+OK +PONG"

    added = {
        "name": "reporting",
        "password": "reporting-test-password",
        "keys": ["app:*"],
        "commands": ["+@connection", "+get"],
    }
    changed = [*copy.deepcopy(scenario.extra_acl_users), added]
    try:
        # What an operator runs to change users: only the ACL part of the role.
        run_playbook(scenario.converge, {"redisops_redis_extra_acl_users": changed}, tags=ACL_TAGS)
        assert remote.out("reporting", added["password"], "PING") == "PONG"
        assert server.check_output("systemctl show -p MainPID --value redis-server") == pid_before
        assert held.use_again() == "+PONG +OK"
    finally:
        # Back to the scenario's users: the extra user is gone, still no restart.
        run_playbook(scenario.converge, tags=ACL_TAGS)
    assert "WRONGPASS" in remote.out(None, None, "AUTH", "reporting", added["password"])
    assert server.check_output("systemctl show -p MainPID --value redis-server") == pid_before
