"""Secrets never reach the logs, not even with -vvv."""

from conftest import REDIS_VARS, SCENARIO_DIR
from redis_testlib import run_playbook


def test_no_password_in_a_vvv_converge():
    secrets = [REDIS_VARS["redis_server_admin_password"]] + [
        u["password"] for u in REDIS_VARS["redis_server_acl_users"]
    ]
    # A changed password makes every secret-handling task actually run.
    users = [dict(u) for u in REDIS_VARS["redis_server_acl_users"]]
    users[0]["passwords"] = [users[0].pop("password"), "rotated-app-password-0002"]
    secrets.append("rotated-app-password-0002")
    try:
        log = run_playbook(SCENARIO_DIR / "converge.yml", {"redis_server_acl_users": users}, verbosity=3)
        assert "Write the ACL file" in log and "changed: [" in log  # the run did the work
        leaked = [s for s in secrets if s in log]
        assert leaked == []
    finally:
        run_playbook(SCENARIO_DIR / "converge.yml", tags="redis_server:acl")
