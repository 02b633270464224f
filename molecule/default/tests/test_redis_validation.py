"""Bad variables fail before anything changes, naming the variable."""

import pytest

from redisops_testlib.playbooks import ansible_playbook
from redisops_testlib.scenario import scenario_of

SCENARIO = scenario_of(__file__)
USERS = SCENARIO.extra_acl_users

# Each case: extra vars, and what the error names.
BAD = {
    "short admin password": ({"redis_server_admin_password": "short"}, "redis_server_admin_password"),
    "short user password": ({"redis_server_acl_users": [{**USERS[0], "password": "tiny"}]}, "redis_server_acl_users"),
    "network bind without users": ({"redis_server_acl_users": []}, "redis_server_acl_users is empty"),
    "TLS without files": ({"redis_server_tls_enabled": True}, "redis_server_tls_cert_file"),
    "wrong type": ({"redis_server_port": "not-a-port"}, "redis_server_port"),
    "unknown eviction policy": ({"redis_server_maxmemory_policy": "evict-everything"}, "redis_server_maxmemory_policy"),
    "user named default": ({"redis_server_acl_users": [{**USERS[0], "name": "default"}]}, "redis_server_acl_users"),
    "versioned rule without a version": (
        {"redis_server_acl_denied_commands": ["@admin", {"rule": "function", "since": "seven"}]},
        "redis_server_acl_denied_commands",
    ),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_variable_fails_early_and_names_it(server, case):
    extra, expected = BAD[case]
    before = server.check_output("sha256sum /etc/redis/redis.conf /etc/redis/users.acl")
    proc = ansible_playbook(SCENARIO.converge, extra)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert expected in output
    # It failed in validation: no task that changes the host ran.
    assert "changed: [" not in output
    assert server.check_output("sha256sum /etc/redis/redis.conf /etc/redis/users.acl") == before
