"""Drill: rotate the app user's password while a client keeps writing: zero failures.

Runbook: docs/runbooks/redis-rotate-password.md
"""

import copy
import json
import uuid

from conftest import REDIS_VARS, SCENARIO_DIR
from drill_lib import ops, ops_ok
from redis_testlib import run_playbook, wait_for

NEW_PASSWORD = "app-drill-password-rotated-02"

# A client that behaves like an app process (at most 90 s, until told to stop):
# every iteration connects, AUTHs with the password in its config file (re-read
# each time, as a rolled app would), SETs a key and checks the reply. Python
# stdlib only (RESP by hand).
CLIENT = r"""
import json, os, socket, sys, time
addr, port, user, tag, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5])
pwfile, stop, out = "/tmp/%s.pw" % tag, "/tmp/%s.stop" % tag, "/tmp/%s.json" % tag
def resp(*a):
    return ("*%d\r\n" % len(a) + "".join("$%d\r\n%s\r\n" % (len(x.encode()), x) for x in a)).encode()
stats = {"ok": 0, "failed": 0, "by_password": {}, "errors": []}
deadline = time.time() + seconds
i = 0
while time.time() < deadline and not os.path.exists(stop):
    i += 1
    pw = open(pwfile).read().strip()
    try:
        s = socket.create_connection((addr, port), timeout=5)
        f = s.makefile("rb")
        s.sendall(resp("AUTH", user, pw) + resp("SET", "app:rot:%d" % i, str(i)))
        replies = [f.readline().strip().decode(), f.readline().strip().decode()]
        s.close()
        good = replies == ["+OK", "+OK"]
    except OSError as e:
        replies, good = [repr(e)], False
    if good:
        stats["ok"] += 1
        stats["by_password"][pw[-2:]] = stats["by_password"].get(pw[-2:], 0) + 1
    else:
        stats["failed"] += 1
        stats["errors"].append(replies)
    if i % 20 == 0:
        json.dump(stats, open(out + ".tmp", "w")); os.replace(out + ".tmp", out)
    time.sleep(0.02)
stats["done"] = True
json.dump(stats, open(out + ".tmp", "w")); os.replace(out + ".tmp", out)
"""


def _users_with_app_password(password: str) -> list:
    users = copy.deepcopy(REDIS_VARS["redis_server_acl_users"])
    for user in users:
        if user["name"] == "app":
            user["password"] = password
    return users


def _stats(client, tag):
    f = client.file(f"/tmp/{tag}.json")
    return json.loads(f.content_string) if f.exists else {}


def test_rotation_refuses_to_finish_before_the_inventory_holds_the_new_password():
    proc = ops("rotate-redis-password", {"phase": "finish", "user": "app", "new_password": NEW_PASSWORD})
    assert proc.returncode != 0
    assert "does not hold exactly the new password" in proc.stdout
    assert NEW_PASSWORD not in proc.stdout + proc.stderr


def test_rotation_under_load_has_zero_failed_commands(client, remote, users):
    old = users["app"]["password"]
    tag = uuid.uuid4().hex[:8]
    client.run(f"cat > /tmp/{tag}.py <<'EOF'\n{CLIENT}\nEOF")
    client.run(f"printf '%s' {old} > /tmp/{tag}.pw")
    client.check_output(
        f"setsid python3 /tmp/{tag}.py {remote.address} {remote.port} app {tag} 90 "
        f">/tmp/{tag}.log 2>&1 </dev/null &"
    )
    try:
        wait_for(lambda: _stats(client, tag).get("ok", 0) >= 20)

        # Phase add: both passwords work.
        out = ops_ok("rotate-redis-password", {"phase": "add", "user": "app", "new_password": NEW_PASSWORD})
        assert "phase add: the new password is accepted next to the old one (1 -> 2" in out
        assert NEW_PASSWORD not in out
        assert remote.out("app", old, "PING") == "PONG"
        assert remote.out("app", NEW_PASSWORD, "PING") == "PONG"
        # Re-running a phase is safe: nothing changes the second time.
        out = ops_ok("rotate-redis-password", {"phase": "add", "user": "app", "new_password": NEW_PASSWORD})
        assert "accepts 2 passwords: nothing to change" in out
        assert "changed=0" in out

        # Roll the app: the client picks up the new password.
        ok_before_roll = _stats(client, tag)["ok"]
        client.run(f"printf '%s' {NEW_PASSWORD} > /tmp/{tag}.pw")
        wait_for(lambda: _stats(client, tag)["by_password"].get(NEW_PASSWORD[-2:], 0) >= 20)

        # Phase finish, with the inventory (vault) now holding the new password.
        out = ops_ok("rotate-redis-password", {
            "phase": "finish", "user": "app", "new_password": NEW_PASSWORD,
            "redis_server_acl_users": _users_with_app_password(NEW_PASSWORD),
        })
        assert "phase finish: 1 old password(s) removed" in out
        assert "WRONGPASS" in remote.out(None, None, "AUTH", "app", old)
        # Let the client run a little on the finished rotation, then stop it.
        ok_at_finish = _stats(client, tag)["ok"]
        wait_for(lambda: _stats(client, tag)["ok"] >= ok_at_finish + 20)
        client.run(f"touch /tmp/{tag}.stop")
        wait_for(lambda: _stats(client, tag).get("done"))
        stats = _stats(client, tag)
        print(f"rotation: {stats['ok']} commands ok, {stats['failed']} failed "
              f"({ok_before_roll} before the roll); errors {stats['errors'][:3]}")
        assert stats["failed"] == 0
        assert stats["ok"] > ok_before_roll + 40
    finally:
        client.run(f"touch /tmp/{tag}.stop")
        # Back to the scenario's inventory password for the other drills.
        run_playbook(SCENARIO_DIR / "converge.yml", tags="redis_server:acl")
    assert remote.out("app", old, "PING") == "PONG"

