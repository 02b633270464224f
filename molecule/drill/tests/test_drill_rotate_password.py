"""Drill: rotate the app_data user's password while a client keeps calling the
API: the app is rolled onto the new password between the two phases, and not
one request fails; a connection that logged in with the old password is closed
at the finish. And a user switched off or removed loses its open connections.

Runbook: docs/runbooks/redis-rotate-password.md
"""

import uuid

from redisops_testlib.api import ApiLoop, summary
from redisops_testlib.playbooks import run_playbook
from redisops_testlib.redis_cli import HeldConnection
from redisops_testlib.scenario import REPO, scenario_of

SCENARIO = scenario_of(__file__)
PASSWORDS = SCENARIO.passwords

USER = "app_data"
NEW_PASSWORD = "data-drill-password-rotated2"
# The inventory (vault) once it holds the new password: what the operator
# edits, given here as an extra var. redis_server_acl_users and the app's env
# file are both derived from redisops_redis_passwords.
NEW_INVENTORY = {"redisops_redis_passwords": {**PASSWORDS, USER: NEW_PASSWORD}}
# app_data's URL, in the web process's env file (also the worker's and the consumers').
ENV_FILE = "/etc/redisops/web.env"
# What a held connection's next command gets once Redis has closed it (HeldConnection).
CUT = {"(closed)", "(ConnectionResetError)", "(BrokenPipeError)"}
APP_UNITS = ["redisops-web.service", "redisops-worker@default.service", "redisops-stream-consumer.service"]


def _roll_app(extra_vars: dict | None) -> str:
    """Redeploy the app layer (new env file; gunicorn, workers, beat and
    consumers restart host by host), as the runbook's step 2 says."""
    return run_playbook(REPO / "playbooks" / "site.yml", extra_vars, tags="django_app", limit="app")


def _pids(host) -> dict[str, str]:
    return {u: host.service(u).systemd_properties["MainPID"] for u in APP_UNITS}


def test_switching_a_user_off_or_removing_it_closes_its_open_connections(remote, ops):
    """An inventory change applied live (playbooks/redis.yml --tags redis_server:acl):
    a user switched off (enabled: false) can no longer log in, and the connections it
    already had are closed; so are those of a user removed from the inventory.
    Runs before the rotation below: its converges apply the scenario's passwords, which
    the rotation replaces for app_data (Redis and the app agree on the new one after it)."""
    users = [
        {
            "name": f"drill_{name}",
            "password": f"drill-{name}-password-0001",
            "keys": [f"drill:{name}:*"],
            "commands": ["+ping", "+set"],
        }
        for name in ("off", "gone")
    ]
    tag = uuid.uuid4().hex[:8]
    try:
        run_playbook(
            SCENARIO.converge, {"redisops_redis_extra_acl_users": users}, tags="redis_server:acl", limit=ops.host
        )
        held = {u["name"]: HeldConnection(remote, u["name"], u["password"], f"{u['name']}-{tag}") for u in users}
        assert [h.opened() for h in held.values()] == ["+OK +PONG"] * 2
        out = run_playbook(
            SCENARIO.converge,
            {"redisops_redis_extra_acl_users": [{**users[0], "enabled": False}]},
            tags="redis_server:acl",
            limit=ops.host,
        )
        assert "RUNNING HANDLER [redis_server : Apply Redis ACLs live]" in out
        for name, h in held.items():
            cut = h.use_again()
            print(f"{name}: {cut}")
            assert cut.split()[0] in CUT, (name, cut)
        assert "WRONGPASS" in remote.out(None, None, "AUTH", users[0]["name"], users[0]["password"])
    finally:
        run_playbook(SCENARIO.converge, tags="redis_server:acl", limit=ops.host)


def test_rotation_refuses_to_finish_before_the_inventory_holds_the_new_password(ops):
    proc = ops.run("rotate-redis-password", {"phase": "finish", "user": USER, "new_password": NEW_PASSWORD})
    assert proc.returncode != 0
    assert "does not hold exactly the new password" in proc.stdout
    assert NEW_PASSWORD not in proc.stdout + proc.stderr


def test_rotation_under_api_load_has_zero_failed_requests(app_host, remote, base_url, ops):
    old = PASSWORDS[USER]
    # The roll alone took 5 min on a loaded machine: the loop must outlast it.
    loop = ApiLoop(app_host, base_url, "stream", seconds=900)
    done = False
    # Two connections logged in with the old password before the rotation (a
    # leaked password in use): one is used again before the finish, one after.
    tag = uuid.uuid4().hex[:8]
    held_until_roll = HeldConnection(remote, USER, old, f"rotate-roll-{tag}", wait=900)
    held_until_finish = HeldConnection(remote, USER, old, f"rotate-finish-{tag}", wait=900)
    assert held_until_roll.opened() == held_until_finish.opened() == "+OK +PONG"
    try:
        loop.wait_ok(20)

        # Phase add: both passwords work.
        out = ops.ok("rotate-redis-password", {"phase": "add", "user": USER, "new_password": NEW_PASSWORD})
        assert "phase add: the new password is accepted next to the old one (1 -> 2" in out
        assert NEW_PASSWORD not in out
        assert remote.out(USER, old, "PING") == "PONG"
        assert remote.out(USER, NEW_PASSWORD, "PING") == "PONG"
        again = ops.ok("rotate-redis-password", {"phase": "add", "user": USER, "new_password": NEW_PASSWORD})
        assert "accepts 2 passwords: nothing to change" in again
        assert "changed=0" in again

        # The vault holds the new password; roll the app onto it.
        pids = _pids(app_host)
        ok_before_roll = loop.stats()["ok"]
        out = _roll_app(NEW_INVENTORY)
        assert NEW_PASSWORD not in out
        assert app_host.file(ENV_FILE).contains(NEW_PASSWORD)
        assert not app_host.file(ENV_FILE).contains(old)
        rolled = _pids(app_host)
        assert all(rolled[u] != pids[u] for u in APP_UNITS), (pids, rolled)
        loop.wait_ok(20)
        # Until the finish, a connection that logged in with the old password works.
        assert held_until_roll.use_again().startswith("+PONG")

        # Phase finish: only the new password is accepted.
        out = ops.ok(
            "rotate-redis-password", {"phase": "finish", "user": USER, "new_password": NEW_PASSWORD, **NEW_INVENTORY}
        )
        assert "phase finish: 1 old password(s) removed" in out
        assert f"the connections authenticated as {USER} were closed" in out
        assert "WRONGPASS" in remote.out(None, None, "AUTH", USER, old)
        # After it, no connection that logged in with the old password works:
        # its next command gets no reply.
        cut = held_until_finish.use_again()
        assert cut.split()[0] in CUT, cut
        loop.wait_ok(20)
        # Verify: fresh connections with the deployed configuration work.
        ops.ok("smoke", limit="all")
        stats = loop.stop()
        print(f"rotation: {summary(stats)} ({ok_before_roll} ok before the roll); errors {stats['errors'][:3]}")
        assert stats["failed"] == 0
        assert stats["ok"] > ok_before_roll + 40
        done = True
    finally:
        loop.stop()
        if not done:
            # Back to the scenario's inventory: Redis first, then the app (its
            # migrate step needs the password Redis accepts). After a finished
            # rotation, Redis and the app agree on the new password: later
            # drills (status) need nothing more, and two rolls cost minutes.
            run_playbook(SCENARIO.converge, tags="redis_server:acl", limit=ops.host)
            _roll_app(None)
