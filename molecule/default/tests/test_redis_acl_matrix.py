"""The ACL matrix: every user of the rendered ACL file (the app's users from
django_app/redisops/redis_acl.py through the wiring, and the scenario's own) against
the commands no application user may run.

As the user, over the network, each on a connection of its own: inside MULTI ...
DISCARD where the user may open a transaction (Redis checks a command's permissions,
command, keys and channels, when it queues it: a denied one is answered NOPERM, one
wrongly allowed is only QUEUED, then discarded), else on its own. The arguments do no
harm should a command be allowed (a syntax error after the ACL check, a client id or
library that does not exist, empty databases). A few run for real as well, outside any
transaction. On 7.0+ ACL DRYRUN (as the admin) must give the same verdict; Redis 6.0 has
no DRYRUN, so the tries as the user are the proof there. Every allowance is listed in
ALLOWED or channel_allowance() with its reason."""

import pytest

from redisops_testlib.acl_matrix import DRYRUN_DENIED, REAL, as_expected, matrix
from redisops_testlib.hosts import run_client
from redisops_testlib.redis_cli import admin
from redisops_testlib.scenario import scenario_of

SCENARIO = scenario_of(__file__)
USERS = SCENARIO.acl_users

# (user, command): why that user may run it.
ALLOWED = {
    ("monitor", "CLIENT LIST"): "the scenario's made-up monitor user is granted +client|list with "
    "deny_dangerous false: a user's explicit grant outside the deny list stays (and it proves the deny "
    "list is what takes CLIENT LIST from everyone else)",
}


def as_user(remote, name: str, commands: list[list[str]], multi: bool = True) -> list[str]:
    kw = {"address": remote.address, "port": remote.port, "user": name, "commands": commands, "multi": multi}
    return run_client(remote.host, "redis_try", {"REDIS_PASSWORD": USERS[name]["password"]}, **kw)["replies"]


@pytest.mark.converged_state
def test_matrix_covers_every_user_of_the_acl_file(server):
    """The matrix below runs for exactly the users Redis has (besides default and admin)."""
    live = set(admin(server, "ACL", "USERS").split()) - {"default", "admin"}
    assert live == set(USERS)
    assert {"app_broker", "app_results", "app_cache", "app_data", "app_monitor"} <= live


@pytest.mark.converged_state
@pytest.mark.parametrize("name", sorted(USERS))
def test_user_is_refused_every_dangerous_command(remote, version, name):
    rows = matrix(USERS, name, version, ALLOWED)
    replies = as_user(remote, name, [words for _, words, _ in rows])
    wrong = [
        f"{what}: {reply}" + (f" (listed as allowed: {reason})" if reason else "")
        for (what, _, reason), reply in zip(rows, replies, strict=True)
        if not as_expected(what, reply, reason, version)
    ]
    assert wrong == [], f"{name}: allowed where the matrix expects a refusal, or the reverse: {wrong}"


@pytest.mark.converged_state
@pytest.mark.parametrize("name", sorted(USERS))
def test_user_is_refused_for_real_outside_a_transaction(remote, version, name):
    rows = matrix(USERS, name, version, ALLOWED)
    rows = [(what, words) for what, words, reason in rows if what in REAL and not reason]
    replies = as_user(remote, name, [words for _, words in rows], multi=False)
    assert len(rows) >= 6
    pairs = zip(rows, replies, strict=True)
    wrong = [f"{what}: {reply}" for (what, _), reply in pairs if not reply.startswith("-NOPERM")]
    assert wrong == [], f"{name} ran: {wrong}"


@pytest.mark.converged_state
@pytest.mark.parametrize("name", sorted(USERS))
def test_acl_dryrun_agrees_on_every_command(remote, version, scenario, name):
    if version < (7, 0):
        # No ACL DRYRUN before 7.0: assert that (the tries as the user are the proof there).
        password = scenario.redis_vars["redis_server_admin_password"]
        assert "Unknown subcommand" in remote.out("admin", password, "ACL", "DRYRUN", name, "PING")
        return
    rows = matrix(USERS, name, version, ALLOWED)
    kw = {"address": remote.address, "port": remote.port, "user": "admin", "multi": False}
    env = {"REDIS_PASSWORD": scenario.redis_vars["redis_server_admin_password"]}
    dryruns = [["ACL", "DRYRUN", name, *words] for _, words, _ in rows]
    verdicts = run_client(remote.host, "redis_try", env, commands=dryruns, **kw)
    wrong = [
        f"{what}: {verdict}"
        for (what, _, reason), verdict in zip(rows, verdicts["replies"], strict=True)
        if not (verdict == "+OK" if reason else DRYRUN_DENIED.match(verdict))
    ]
    assert wrong == [], f"ACL DRYRUN {name}: {wrong}"
