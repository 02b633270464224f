"""A Sentinel user's password changed in the inventory goes live with a converge of the
Sentinel layer (molecule/ha/converge-sentinel.yml runs playbooks/sentinel.yml): the same
Sentinel processes, the old password refused, the new one accepted, and after the peer
user's change the Sentinels still log in to each other and reach their quorum. The
client user's and the Sentinels' own Redis password change in two steps, the old one
accepted in between (converge-redis-sentinel.yml: the Redis layer, then Sentinel's)."""

import itertools
import re
import time
from collections.abc import Callable

from redisops_testlib.ha import Ha, Node, app_smoke
from redisops_testlib.playbooks import ansible_playbook
from redisops_testlib.polling import wait_for

# The scenario's passwords (molecule.yml: ha_sentinel_passwords), three of them changed.
CHANGED = {
    "admin": "sentinel-admin-test-pw-02",
    "peer": "sentinel-peer-test-pw-002",
    "client": "sentinel-client-test-pw-2",
}


def _user(ha: Ha, role: str) -> str:
    """The Sentinel ACL user's name (the role's defaults, unless the scenario sets them)."""
    default = {"admin": "admin", "peer": "sentinel-peer", "client": "sentinel-client"}[role]
    return ha.vars.get(f"redis_sentinel_{role}_user", default)


def _converge(
    ha: Ha, scenario, passwords: dict[str, str], extra: dict | None = None, playbook: str = "converge-sentinel.yml"
) -> dict[str, int]:
    """The Sentinel layer (or `playbook`) with these Sentinel passwords and extra
    variables; changed tasks per host."""
    proc = ansible_playbook(scenario.dir / playbook, {"ha_sentinel_passwords": passwords, **(extra or {})})
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    recap = {h: int(c) for h, c in re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", proc.stdout, re.M)}
    assert set(recap) >= {n.name for n in ha.nodes}, proc.stdout[-2000:]
    return recap


def _pid(node: Node) -> str:
    return node.host.check_output("systemctl show -p MainPID --value redis-sentinel")


def _ping(ha: Ha, node: Node, role: str, password: str) -> str:
    """PING to the node's Sentinel from the client host as the role's user: PONG or the error."""
    return ha.sentinel(node).out(_user(ha, role), password, "PING")


def _ckquorum(ha: Ha, node: Node) -> str:
    return ha.sentinel(node).out("monitor", ha.sentinel_passwords["monitor"], "SENTINEL", "CKQUORUM", ha.master_name)


def _peers(node: Node, master: str) -> list[dict[str, str]]:
    """SENTINEL SENTINELS: this Sentinel's view of the others."""
    lines = node.host.check_output(f"redis-sentinel-admin SENTINEL SENTINELS {master}").splitlines()
    pairs = list(zip(lines[0::2], lines[1::2], strict=False))
    starts = [i for i, (k, _) in enumerate(pairs) if k == "name"] + [len(pairs)]
    return [dict(pairs[a:b]) for a, b in itertools.pairwise(starts)]


def _peer_logins(ha: Ha, node: Node) -> int:
    """Connections to the node's Sentinel logged in as the peer user."""
    clients = node.host.check_output("redis-sentinel-admin CLIENT LIST")
    return clients.count(f" user={_user(ha, 'peer')} ")


def _all_talking(ha: Ha) -> bool:
    """Every Sentinel sees both others up (no s_down) and reaches its quorum."""
    for node in ha.nodes:
        peers = _peers(node, ha.master_name)
        flags = [p["flags"] for p in peers]
        ok = _ckquorum(ha, node)
        if len(peers) != len(ha.nodes) - 1 or any("down" in f for f in flags) or not ok.startswith("OK 3 usable"):
            print(f"{node.name}: peers {flags}, CKQUORUM {ok}")
            return False
    return True


def _holds(ha: Ha, check: Callable[[], bool], what: str) -> tuple[int, float]:
    """Assert `check` over twice down-after (what a Sentinel that could not log in
    would take to see a peer or node down): how many checks, over how long."""
    hold = 2 * ha.down_after_s + 2
    deadline, checks = time.monotonic() + hold, 0
    while time.monotonic() < deadline:
        assert check(), f"{what} after the password change"
        checks += 1
    return checks, hold


def test_changed_sentinel_passwords_apply_live_and_the_sentinels_keep_their_quorum(ha: Ha, scenario):
    original = dict(ha.sentinel_passwords)
    changed = original | CHANGED
    assert wait_for(lambda: _all_talking(ha), timeout=60)
    pids = {n.name: _pid(n) for n in ha.nodes}
    started = time.monotonic()
    recap = _converge(ha, scenario, changed)
    print(f"converge with changed admin, peer and client passwords: {recap} ({time.monotonic() - started:.0f} s)")
    assert all(recap[n.name] > 0 for n in ha.nodes), recap
    assert {n.name: _pid(n) for n in ha.nodes} == pids, "no Sentinel restarted"
    try:
        for node in ha.nodes:
            for role, new in CHANGED.items():
                old_reply = _ping(ha, node, role, original[role])
                assert "WRONGPASS" in old_reply, (node.name, role, old_reply)
                assert _ping(ha, node, role, new) == "PONG", (node.name, role)
        # Every Sentinel drops its peers' connections: they can only come back by
        # logging in with the password the peer user now accepts, the new one.
        for node in ha.nodes:
            node.host.check_output(f"redis-sentinel-admin CLIENT KILL USER {_user(ha, 'peer')}")
        wait_for(lambda: all(_peer_logins(ha, n) >= len(ha.nodes) - 1 for n in ha.nodes), timeout=60, interval=1)
        # Past down-after, a peer that could not log in would be s_down; it stays up.
        checks, hold = _holds(ha, lambda: _all_talking(ha), "a Sentinel lost a peer or its quorum")
        print(f"CKQUORUM OK and no peer down on every Sentinel in {checks} checks over {hold:.0f} s")
        assert {n.name: _pid(n) for n in ha.nodes} == pids, "no Sentinel restarted"
        # The change is done: the same inventory again changes nothing.
        recap = _converge(ha, scenario, changed)
        print(f"second converge with the changed passwords: {recap}")
        assert all(recap[n.name] == 0 for n in ha.nodes), recap
    finally:
        # Back to the scenario's passwords, for the tests after this one.
        recap = _converge(ha, scenario, original)
        print(f"converge back to the scenario's passwords: {recap}")
    for node in ha.nodes:
        assert _ping(ha, node, "peer", original["peer"]) == "PONG"
        assert "WRONGPASS" in _ping(ha, node, "peer", CHANGED["peer"])
    assert wait_for(lambda: _all_talking(ha), timeout=60)
    assert {n.name: _pid(n) for n in ha.nodes} == pids, "no Sentinel restarted"


def test_the_client_user_accepts_its_old_password_until_the_app_has_the_new_one(ha: Ha, scenario):
    original = dict(ha.sentinel_passwords)
    old, new = original["client"], CHANGED["client"]
    pids = {n.name: _pid(n) for n in ha.nodes}
    try:
        # Step 1: the new password, and the old one kept (the app still has it).
        recap = _converge(ha, scenario, original | {"client": new}, {"redis_sentinel_client_password_previous": old})
        print(f"client password: new one set, old one kept: {recap}")
        for node in ha.nodes:
            assert _ping(ha, node, "client", old) == "PONG", node.name
            assert _ping(ha, node, "client", new) == "PONG", node.name
        # The app's processes, their connections dropped by ACL LOAD, log in again
        # with the old password: the app keeps working through the Sentinels.
        app_smoke()
    finally:
        # Back to the scenario's password (the old one stays the app's here: the
        # app is not rolled), the other password no longer accepted.
        recap = _converge(ha, scenario, original)
        print(f"client password: back to one: {recap}")
    for node in ha.nodes:
        assert _ping(ha, node, "client", old) == "PONG", node.name
        assert "WRONGPASS" in _ping(ha, node, "client", new), node.name
    assert {n.name: _pid(n) for n in ha.nodes} == pids, "no Sentinel restarted"


def _redis_pid(node: Node) -> str:
    return node.host.check_output("systemctl show -p MainPID --value redis-server")


def _sentinel_logins(ha: Ha, node: Node) -> int:
    """Connections to the node's Redis logged in as the Sentinels' user."""
    user = ha.vars.get("redis_sentinel_redis_user", "sentinel")
    return node.host.check_output("redis-admin CLIENT LIST").count(f" user={user} ")


def _nothing_down(ha: Ha) -> bool:
    """No Sentinel sees the master or a replica down (s_down, o_down)."""
    for node in ha.nodes:
        flags = [ha.sentinel_state(node)["flags"]]
        lines = node.host.check_output(f"redis-sentinel-admin SENTINEL REPLICAS {ha.master_name}").splitlines()
        flags += [v for k, v in zip(lines[0::2], lines[1::2], strict=False) if k == "flags"]
        if len(flags) != len(ha.nodes) or any("down" in f or "disconnected" in f for f in flags):
            print(f"{node.name}: master and replica flags {flags}")
            return False
    return True


def test_the_sentinels_redis_password_changes_live_with_both_accepted_in_between(ha: Ha, scenario):
    user = ha.vars.get("redis_sentinel_redis_user", "sentinel")
    old, new = ha.vars["redis_sentinel_redis_password"], "sentinel-redis-test-pw-2"
    master = wait_for(ha.agreed_master, timeout=60)
    assert wait_for(lambda: _nothing_down(ha), timeout=60)
    pids = {n.name: (_pid(n), _redis_pid(n)) for n in ha.nodes}
    passwords = dict(ha.sentinel_passwords)

    def layers(current: str, previous: str = "") -> dict[str, int]:
        extra = {
            "redis_sentinel_redis_password": current,
            "redis_server_replication_sentinel_password_previous": previous,
        }
        return _converge(ha, scenario, passwords, extra, playbook="converge-redis-sentinel.yml")

    def accepted(password: str) -> list[str]:
        """The nodes whose Redis accepts the Sentinels' user with this password."""
        return [n.name for n in ha.nodes if ha.redis(n).out(user, password, "PING") == "PONG"]

    everyone = [n.name for n in ha.nodes]
    try:
        # Step 1: every node accepts both; every Sentinel then logs in with the new one.
        print(f"new password, old one kept: {layers(new, old)}")
        assert accepted(old) == everyone
        assert accepted(new) == everyone
        # Step 2: the old one dropped; the nodes close the logins made with it, and
        # the Sentinels log in again: with the new one, or they would see every node
        # down within down-after.
        recap = layers(new)
        print(f"old password dropped: {recap}")
        assert accepted(old) == []
        assert accepted(new) == everyone
        wait_for(lambda: all(_sentinel_logins(ha, n) >= len(ha.nodes) for n in ha.nodes), timeout=60, interval=1)
        checks, hold = _holds(ha, lambda: _nothing_down(ha), "a Sentinel lost a Redis node")
        print(f"no node down on any Sentinel in {checks} checks over {hold:.0f} s")
        assert ha.agreed_master() == master
        assert {n.name: (_pid(n), _redis_pid(n)) for n in ha.nodes} == pids, "nothing restarted"
        recap = layers(new)
        print(f"the same inventory again: {recap}")
        assert all(recap[n] == 0 for n in everyone), recap
    finally:
        # Back to the scenario's password, in the same two steps.
        print(f"back, both accepted: {layers(old, new)}; back, one: {layers(old)}")
    assert accepted(old) == everyone
    assert accepted(new) == []
    assert wait_for(lambda: _nothing_down(ha), timeout=60)
