"""Every Sentinel password changed in one rotation, as the runbook runs it
(docs/runbooks/redis-rotate-password.md), each step a converge of the Redis and Sentinel
layers (converge-redis-sentinel.yml runs playbooks/redis.yml, then sentinel.yml):
- step one: the Sentinel users' passwords (admin, peer, client) change live, the old ones
  refused, except the two that other layers share, which are accepted old and new: the
  client user's (the app rolls to it) and the Sentinels' login to the Redis nodes;
- step two: the Redis nodes drop the old password and the client user the new one (the
  app is not rolled here): each dropped one refused, and nothing goes down (the Sentinels
  log in to each other and to the nodes with the passwords kept); the same inventory
  again changes nothing;
- back to the scenario's passwords in the same two steps.
Sentinel 6.0 has no ACL users: there the admin, peer and client passwords are not used
(the shared one stays the only login, asserted instead), and a change of the shared one is
refused (test_ha_security.py is where 6.0's logins are tried); the Sentinels' login to the
Redis nodes (the nodes' default user on 6.0) rotates in the same two steps, but the nodes
do not close the logins made with the dropped password (redis-acl-apply leaves the default
user's connections): the test closes them, and the Sentinels must log in again.
The same Sentinel and Redis processes throughout. The tests run in this order and share
the rotation (one converge per step: each costs a minute or more under CI load); if one
fails, the module's fixture still brings the scenario's passwords back."""

import itertools
import re
import time
from collections.abc import Callable

import pytest

from redisops_testlib.ha import Ha, Node, app_smoke
from redisops_testlib.playbooks import ansible_playbook
from redisops_testlib.polling import wait_for

# The scenario's passwords (molecule.yml: ha_sentinel_passwords), three of them changed.
CHANGED = {
    "admin": "sentinel-admin-test-pw-02",
    "peer": "sentinel-peer-test-pw-002",
    "client": "sentinel-client-test-pw-2",
}
# And the Sentinels' password to the Redis nodes (redis_sentinel_redis_password).
NEW_REDIS = "sentinel-redis-test-pw-2"


def _user(ha: Ha, role: str) -> str:
    """The Sentinel ACL user's name (the role's defaults, unless the scenario sets them)."""
    default = {"admin": "admin", "peer": "sentinel-peer", "client": "sentinel-client"}[role]
    return ha.vars.get(f"redis_sentinel_{role}_user", default)


def _pid(node: Node) -> str:
    return node.host.check_output("systemctl show -p MainPID --value redis-sentinel")


def _ping(ha: Ha, node: Node, role: str, password: str) -> str:
    """PING to the node's Sentinel from the client host as the role's user: PONG or the error."""
    return ha.sentinel(node).out(_user(ha, role), password, "PING")


def _ckquorum(ha: Ha, node: Node) -> str:
    return ha.sentinel(node).out(*ha.sentinel_login("monitor"), "SENTINEL", "CKQUORUM", ha.master_name)


def _shared_only(ha: Ha, node: Node, refused: list[str]) -> None:
    """Sentinel 6.0: the shared password logs in, these passwords do not."""
    assert ha.sentinel(node).out("", ha.sentinel_passwords["shared"], "PING") == "PONG", node.name
    for password in refused:
        assert ha.sentinel(node).out("", password, "PING").startswith("NOAUTH"), node.name


def _peers(node: Node, master: str) -> list[dict[str, str]]:
    """SENTINEL SENTINELS: this Sentinel's view of the others."""
    lines = node.host.check_output(f"redis-sentinel-admin SENTINEL SENTINELS {master}").splitlines()
    pairs = list(zip(lines[0::2], lines[1::2], strict=False))
    starts = [i for i, (k, _) in enumerate(pairs) if k == "name"] + [len(pairs)]
    return [dict(pairs[a:b]) for a, b in itertools.pairwise(starts)]


def _peer_logins(ha: Ha, node: Node) -> int:
    """Connections to the node's Sentinel logged in as the peer user (6.0: the peers'
    links, named sentinel-<id>-cmd, with the shared password)."""
    clients = node.host.check_output("redis-sentinel-admin CLIENT LIST")
    if not ha.sentinel_acl:
        return sum(1 for line in clients.splitlines() if " name=sentinel-" in line)
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


def _redis_pid(node: Node) -> str:
    return node.host.check_output("systemctl show -p MainPID --value redis-server")


def _sentinel_logins(ha: Ha, node: Node) -> int:
    """Connections to the node's Redis logged in as the Sentinels' user (6.0: the
    default user, on the links the Sentinels name sentinel-<id>-...)."""
    clients = node.host.check_output("redis-admin CLIENT LIST")
    if not ha.sentinel_acl:
        # 6.0's CLIENT LIST ends each line with user=.
        return sum(
            1 for line in clients.splitlines() if " name=sentinel-" in line and f"{line} ".count(" user=default ")
        )
    return clients.count(f" user={_redis_password(ha)[0]} ")


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


def _redis_password(ha: Ha) -> tuple[str, str]:
    """The Sentinels' Redis user and its password in the scenario."""
    return ha.vars.get("redis_sentinel_redis_user", "sentinel"), ha.vars["redis_sentinel_redis_password"]


def _step(
    ha: Ha, scenario, passwords: dict[str, str], redis: str, redis_previous: str = "", client_previous: str = ""
) -> dict[str, int]:
    """One step of the rotation, a converge of the Redis and Sentinel layers with these
    Sentinel passwords: changed tasks per host."""
    extra = {
        "ha_sentinel_passwords": passwords,
        "redis_sentinel_redis_password": redis,
        "redis_server_replication_sentinel_password_previous": redis_previous,
        "redis_sentinel_client_password_previous": client_previous,
    }
    proc = ansible_playbook(scenario.dir / "converge-redis-sentinel.yml", extra)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    recap = {h: int(c) for h, c in re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", proc.stdout, re.M)}
    assert set(recap) >= {n.name for n in ha.nodes}, proc.stdout[-2000:]
    return recap


def _accepted(ha: Ha, password: str) -> list[str]:
    """The nodes whose Redis accepts the Sentinels' user with this password (6.0: the
    password alone, the default user)."""
    user = _redis_password(ha)[0] if ha.sentinel_acl else ""
    return [n.name for n in ha.nodes if ha.redis(n).out(user, password, "PING") == "PONG"]


def _pids(ha: Ha) -> dict[str, tuple[str, str]]:
    return {n.name: (_pid(n), _redis_pid(n)) for n in ha.nodes}


def _back(ha: Ha, scenario, original: dict[str, str]) -> None:
    """The scenario's passwords again, in two steps: first the old Redis one kept."""
    old = _redis_password(ha)[1]
    print(f"back, both Redis passwords accepted: {_step(ha, scenario, original, old, NEW_REDIS)}")
    print(f"back, one: {_step(ha, scenario, original, old)}")


@pytest.fixture(scope="module")
def rotation(ha: Ha, scenario):
    """The state the tests share: the scenario's passwords, master and pids before
    the rotation; the module's end brings the scenario's passwords back unless the
    last test did."""
    state = {"original": dict(ha.sentinel_passwords), "restored": False, "done": 0}
    assert wait_for(lambda: _all_talking(ha) and _nothing_down(ha), timeout=60)
    state["master"] = wait_for(ha.agreed_master, timeout=60)
    state["pids"] = _pids(ha)
    yield state
    if not state["restored"]:
        _back(ha, scenario, state["original"])


def test_step_one_changes_the_sentinel_passwords_live_and_keeps_the_shared_old_ones(ha: Ha, scenario, rotation):
    original = rotation["original"]
    old_redis = _redis_password(ha)[1]
    recap = _step(ha, scenario, original | CHANGED, NEW_REDIS, old_redis, original["client"])
    print(f"step one (admin, peer, client, Redis passwords; client and Redis old ones kept): {recap}")
    assert all(recap[n.name] > 0 for n in ha.nodes), recap
    assert _pids(ha) == rotation["pids"], "nothing restarted"
    for node in ha.nodes:
        if not ha.sentinel_acl:
            _shared_only(ha, node, list(CHANGED.values()))
            continue
        for role in ("admin", "peer"):
            old_reply = _ping(ha, node, role, original[role])
            assert "WRONGPASS" in old_reply, (node.name, role, old_reply)
            assert _ping(ha, node, role, CHANGED[role]) == "PONG", (node.name, role)
        # The client user: the app still has the old one.
        assert _ping(ha, node, "client", original["client"]) == "PONG", node.name
        assert _ping(ha, node, "client", CHANGED["client"]) == "PONG", node.name
    everyone = [n.name for n in ha.nodes]
    assert _accepted(ha, old_redis) == everyone
    assert _accepted(ha, NEW_REDIS) == everyone
    # The app's processes, their connections dropped by ACL LOAD, log in again with
    # the old client password: the app keeps working through the Sentinels.
    app_smoke()
    rotation["done"] = 1


def test_step_two_refuses_the_dropped_passwords_and_nothing_goes_down(ha: Ha, scenario, rotation):
    """The Redis nodes keep only the new password; the client user only the scenario's
    (the app is not rolled in this scenario: its change is taken back, the new one is
    the one dropped)."""
    # Step two alone would drop the Sentinels' only Redis password: never without step one.
    assert rotation["done"] == 1, "step one did not finish"
    original = rotation["original"]
    old_redis = _redis_password(ha)[1]
    step_two = original | {"admin": CHANGED["admin"], "peer": CHANGED["peer"]}
    print(f"step two (the old Redis and the new client password dropped): {_step(ha, scenario, step_two, NEW_REDIS)}")
    for node in ha.nodes:
        if not ha.sentinel_acl:
            _shared_only(ha, node, list(CHANGED.values()))
            continue
        assert _ping(ha, node, "client", original["client"]) == "PONG", node.name
        assert "WRONGPASS" in _ping(ha, node, "client", CHANGED["client"]), node.name
    assert _accepted(ha, old_redis) == []
    assert _accepted(ha, NEW_REDIS) == [n.name for n in ha.nodes]
    # The nodes closed the Sentinels' logins made with the old password; every
    # Sentinel drops its peers' connections: both come back only by logging in with
    # the passwords now accepted, or a Sentinel would see a node or a peer down
    # within down-after.
    for node in ha.nodes:
        if not ha.sentinel_acl:
            # 6.0: no peer user; the nodes keep the old logins of their default user.
            node.host.check_output("redis-sentinel-admin CLIENT KILL TYPE normal")
            node.host.check_output("redis-admin CLIENT KILL USER default")
            continue
        node.host.check_output(f"redis-sentinel-admin CLIENT KILL USER {_user(ha, 'peer')}")
    wait_for(lambda: all(_peer_logins(ha, n) >= len(ha.nodes) - 1 for n in ha.nodes), timeout=60, interval=1)
    wait_for(lambda: all(_sentinel_logins(ha, n) >= len(ha.nodes) for n in ha.nodes), timeout=60, interval=1)
    checks, hold = _holds(ha, lambda: _all_talking(ha) and _nothing_down(ha), "a Sentinel lost a peer, node or quorum")
    print(f"CKQUORUM OK, no peer and no node down on every Sentinel in {checks} checks over {hold:.0f} s")
    assert ha.agreed_master() == rotation["master"]
    assert _pids(ha) == rotation["pids"], "nothing restarted"
    # The rotation is done: the same inventory again changes nothing.
    recap = _step(ha, scenario, step_two, NEW_REDIS)
    print(f"the same inventory again: {recap}")
    assert all(recap[n.name] == 0 for n in ha.nodes), recap
    rotation["done"] = 2


def test_the_scenarios_passwords_come_back_in_the_same_two_steps(ha: Ha, scenario, rotation):
    original = rotation["original"]
    _back(ha, scenario, original)
    rotation["restored"] = True
    for node in ha.nodes:
        if not ha.sentinel_acl:
            _shared_only(ha, node, list(CHANGED.values()))
            continue
        for role in ("admin", "peer", "client"):
            assert _ping(ha, node, role, original[role]) == "PONG", (node.name, role)
            assert "WRONGPASS" in _ping(ha, node, role, CHANGED[role]), (node.name, role)
    assert _accepted(ha, _redis_password(ha)[1]) == [n.name for n in ha.nodes]
    assert _accepted(ha, NEW_REDIS) == []
    assert wait_for(lambda: _all_talking(ha) and _nothing_down(ha), timeout=60)
    assert ha.agreed_master() == rotation["master"]
    assert _pids(ha) == rotation["pids"], "nothing restarted"


def test_a_shared_password_is_refused_unless_sentinel_is_6_0_and_it_is_unchanged(ha: Ha, scenario):
    """Sentinel 6.0 cannot change its requirepass live (no SENTINEL CONFIG SET, and the
    peers log in with their own): a changed shared password is refused before anything
    changes, and the Sentinels keep the old one. On 6.2+ the role refuses any shared
    password (the ACL users apply). Either way the run fails naming why, and nothing
    restarts."""
    new = "sentinel-shared-test-pw-9"
    if ha.sentinel_acl:
        extra: dict = {"redis_sentinel_shared_password": new}
        expected = "has ACL users: leave redis_sentinel_shared_password empty"
    else:
        extra = {"ha_sentinel_passwords": dict(ha.sentinel_passwords) | {"shared": new}}
        expected = "cannot change its shared password (redis_sentinel_shared_password) live"
    pids = _pids(ha)
    proc = ansible_playbook(scenario.dir / "converge-sentinel.yml", extra)
    print(f"converge with redis_sentinel_shared_password {new!r}: rc {proc.returncode}")
    assert proc.returncode != 0
    assert expected in " ".join(proc.stdout.split()), proc.stdout[-3000:]
    assert _pids(ha) == pids, "nothing restarted"
    for node in ha.nodes:
        assert _ckquorum(ha, node).startswith("OK 3 usable"), node.name
        if not ha.sentinel_acl:
            _shared_only(ha, node, [new])
