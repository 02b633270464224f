"""Secrets never reach the logs, not even with -vvv."""

from redisops_testlib.playbooks import run_playbook


def test_no_password_in_a_vvv_converge(scenario):
    users = scenario.redis_vars["redis_server_acl_users"]
    secrets = [scenario.redis_vars["redis_server_admin_password"], *(u["password"] for u in users)]
    # A changed password makes every secret-handling task actually run.
    users = [dict(u) for u in users]
    users[0]["passwords"] = [users[0].pop("password"), "rotated-app-password-0002"]
    secrets.append("rotated-app-password-0002")
    try:
        log = run_playbook(scenario.converge, {"redis_server_acl_users": users}, verbosity=3)
        # The run did the work.
        assert "Write the ACL file" in log
        assert "changed: [" in log
        leaked = [s for s in secrets if s in log]
        assert leaked == []
    finally:
        run_playbook(scenario.converge, tags="redis_server:acl")
