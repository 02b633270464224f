"""Changing ACL users applies live: same PID, an open connection keeps working."""

import copy
import uuid

from conftest import REDIS_VARS, SCENARIO_DIR
from redis_testlib import run_playbook, wait_for

ACL_TAGS = "redis_server:acl"

# A long-lived client on the client host: AUTH + PING, then after /tmp/<tag>.go
# appears, PING again and report. Python's stdlib only (RESP by hand).
HOLDER = r"""
import os, socket, sys, time
addr, port, user, pw, tag = sys.argv[1:6]
s = socket.create_connection((addr, int(port)), timeout=5)
def cmd(*a):
    s.sendall(("*%d\r\n" % len(a) + "".join("$%d\r\n%s\r\n" % (len(x), x) for x in a)).encode())
    return s.recv(4096).decode().strip()
first = cmd("AUTH", user, pw) + " " + cmd("PING")
open("/tmp/%s.ready" % tag, "w").write(first)
deadline = time.time() + 120
while not os.path.exists("/tmp/%s.go" % tag) and time.time() < deadline:
    time.sleep(0.1)
open("/tmp/%s.result" % tag, "w").write(cmd("PING") + " " + cmd("SET", "app:acl:held", tag))
"""


def test_acl_change_applies_without_restart(server, client, remote, users):
    tag = uuid.uuid4().hex[:8]
    pid_before = server.check_output("systemctl show -p MainPID --value redis-server")
    client.run(f"cat > /tmp/{tag}.py <<'EOF'\n{HOLDER}\nEOF")
    client.run(
        f"setsid python3 /tmp/{tag}.py {remote.address} {remote.port} app "
        f"{users['app']['password']} {tag} >/tmp/{tag}.log 2>&1 </dev/null &"
    )
    wait_for(lambda: client.file(f"/tmp/{tag}.ready").exists)
    assert client.file(f"/tmp/{tag}.ready").content_string == "+OK +PONG"

    added = {"name": "reporting", "password": "reporting-test-password", "keys": ["app:*"],
             "commands": ["+@connection", "+get"]}
    changed = copy.deepcopy(REDIS_VARS["redis_server_acl_users"]) + [added]
    try:
        # What an operator runs to change users: only the ACL part of the role.
        run_playbook(SCENARIO_DIR / "converge.yml", {"redis_server_acl_users": changed}, tags=ACL_TAGS)
        assert remote.out("reporting", added["password"], "PING") == "PONG"
        assert server.check_output("systemctl show -p MainPID --value redis-server") == pid_before
        client.run(f"touch /tmp/{tag}.go")
        wait_for(lambda: client.file(f"/tmp/{tag}.result").exists)
        assert client.file(f"/tmp/{tag}.result").content_string == "+PONG +OK"
    finally:
        # Back to the scenario's users: the extra user is gone, still no restart.
        run_playbook(SCENARIO_DIR / "converge.yml", tags=ACL_TAGS)
    assert "WRONGPASS" in remote.out(None, None, "AUTH", "reporting", added["password"])
    assert server.check_output("systemctl show -p MainPID --value redis-server") == pid_before
