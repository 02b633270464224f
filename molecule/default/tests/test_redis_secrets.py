"""Secrets never reach the logs, not even with -vvv, nor a command line."""

import hashlib
import re

from redisops_testlib.playbooks import run_playbook
from redisops_testlib.polling import wait_for


def test_no_password_in_a_vvv_converge(scenario, users):
    secrets = [scenario.redis_vars["redis_server_admin_password"], *(u["password"] for u in users.values())]
    # A changed password makes every secret-handling task actually run.
    extra = [dict(u) for u in scenario.extra_acl_users]
    extra[0]["passwords"] = [extra[0].pop("password"), "rotated-app-password-0002"]
    secrets.append("rotated-app-password-0002")
    try:
        log = run_playbook(scenario.converge, {"redisops_redis_extra_acl_users": extra}, verbosity=3)
        # The run did the work.
        assert "Write the ACL file" in log
        assert "changed: [" in log
        leaked = [s for s in secrets if s in log]
        assert leaked == []
    finally:
        run_playbook(scenario.converge, tags="redis_server:acl")


def test_redis_admin_keeps_the_password_out_of_argv(server, scenario):
    """redis-admin hands the admin password to redis-cli in REDISCLI_AUTH: not in any
    process's command line while it runs (what `ps` shows every user)."""
    password = scenario.redis_vars["redis_server_admin_password"]
    server.run("setsid redis-admin BLPOP app:argv-probe 5 >/dev/null 2>&1 &")

    def probe_running() -> str:
        out = server.check_output("cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '")
        return out if "app:argv-probe" in out else ""

    cmdlines = wait_for(probe_running)
    assert "redis-cli" in cmdlines
    assert password not in cmdlines


def test_live_acl_apply_keeps_password_hashes_out_of_argv(server, users, scenario):
    """redis-acl-apply hands the ACL rules, #<sha256> password hashes included, to
    redis-cli on stdin: no command line it runs holds one. strace records the argv of
    every program it and its children start (a poll of /proc could miss them)."""
    passwords = [scenario.redis_vars["redis_server_admin_password"], *(u["password"] for u in users.values())]
    hashes = [hashlib.sha256(p.encode()).hexdigest() for p in passwords]
    acl = server.check_output("cat /etc/redis/users.acl")
    assert all(h in acl for h in hashes)  # what it applies does hold them
    run = server.run(
        "t=$(mktemp) && strace -f -qq -e trace=execve -e signal=none -s 65536 -o $t redis-acl-apply"
        " && cat $t; rc=$?; rm -f $t; exit $rc"
    )
    assert run.rc == 0, run.stderr
    assert "ACL users applied: default admin " in run.stdout
    # It did start redis-cli, as the admin user, to apply them.
    assert re.search(r'execve\("/usr/bin/redis-cli", \[.*"--user", "admin"', run.stdout)
    assert [h for h in hashes if h in run.stdout] == []
