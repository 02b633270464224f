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

import re
from fnmatch import fnmatchcase

import pytest

from redisops_testlib.hosts import run_client
from redisops_testlib.redis_cli import admin
from redisops_testlib.scenario import scenario_of

SCENARIO = scenario_of(__file__)
USERS = SCENARIO.acl_users

LIBRARY = "matrix_probe"
# Not a library (no "#!lua name=" line): a FUNCTION LOAD wrongly allowed loads nothing.
NOT_A_LIBRARY = f"redis.register_function('{LIBRARY}', function() return 1 end)"
BAD = "matrix-not-an-option"

# (name, command words, first Redis version that has the command). {own} is a key
# under the user's own pattern, {foreign} one under another user's (see probes()).
DANGEROUS = [
    ("FLUSHALL", ["FLUSHALL", BAD], (6, 0)),
    ("FLUSHDB", ["FLUSHDB", BAD], (6, 0)),
    ("CONFIG GET", ["CONFIG", "GET", "maxmemory"], (6, 0)),
    ("CONFIG SET", ["CONFIG", "SET", BAD, "x"], (6, 0)),
    ("KEYS", ["KEYS", "*"], (6, 0)),
    ("SCAN", ["SCAN", "0"], (6, 0)),
    ("RANDOMKEY", ["RANDOMKEY"], (6, 0)),
    ("DEBUG", ["DEBUG", "SLEEP", "0"], (6, 0)),
    ("SHUTDOWN", ["SHUTDOWN", BAD], (6, 0)),
    ("FUNCTION LOAD", ["FUNCTION", "LOAD", NOT_A_LIBRARY], (7, 0)),
    ("FUNCTION DELETE", ["FUNCTION", "DELETE", LIBRARY], (7, 0)),
    ("FUNCTION FLUSH", ["FUNCTION", "FLUSH", BAD], (7, 0)),
    ("FUNCTION RESTORE", ["FUNCTION", "RESTORE", BAD], (7, 0)),
    ("FCALL", ["FCALL", LIBRARY, "0"], (7, 0)),
    ("FCALL_RO", ["FCALL_RO", LIBRARY, "0"], (7, 0)),
    ("SCRIPT FLUSH", ["SCRIPT", "FLUSH", BAD], (6, 0)),
    ("ACL LIST", ["ACL", "LIST"], (6, 0)),
    ("ACL DELUSER", ["ACL", "DELUSER", BAD], (6, 0)),
    ("CLIENT KILL", ["CLIENT", "KILL", "ID", "999999999"], (6, 0)),
    ("CLIENT LIST", ["CLIENT", "LIST"], (6, 0)),
    ("CLIENT TRACKING", ["CLIENT", "TRACKING", "ON", "BCAST"], (6, 0)),
    ("MONITOR", ["MONITOR"], (6, 0)),
    ("SAVE", ["SAVE"], (6, 0)),
    ("BGREWRITEAOF", ["BGREWRITEAOF"], (6, 0)),
    ("REPLICAOF", ["REPLICAOF", "NO", "ONE"], (6, 0)),
    ("MIGRATE", ["MIGRATE", "127.0.0.1", "1", "{own}", "0", "1"], (6, 0)),
    ("SWAPDB", ["SWAPDB", "14", "15"], (6, 0)),
    ("MODULE", ["MODULE", "LIST"], (6, 0)),
    ("FAILOVER", ["FAILOVER"], (6, 2)),
    # On 6.0 SORT reads the BY/GET keys without checking them against the patterns.
    ("SORT GET", ["SORT", "{own}", "BY", "nosort", "GET", "{foreign}"], (6, 0)),
    # Names of every user's channels.
    ("PUBSUB CHANNELS", ["PUBSUB", "CHANNELS"], (6, 0)),
    ("PUBSUB NUMPAT", ["PUBSUB", "NUMPAT"], (6, 0)),
]
# Tried for real too, outside MULTI: what reads or leaks (and a function load,
# removed again should it ever succeed).
REAL = ["SCAN", "RANDOMKEY", "CLIENT TRACKING", "PUBSUB CHANNELS", "SORT GET", "FUNCTION LOAD", "KEYS"]

# (user, command): why that user may run it.
ALLOWED = {
    ("monitor", "CLIENT LIST"): "the scenario's made-up monitor user is granted +client|list with "
    "deny_dangerous false: a user's explicit grant outside the deny list stays (and it proves the deny "
    "list is what takes CLIENT LIST from everyone else)",
}

# ACL DRYRUN's refusal: "This user has no permissions to ..." (7.0), "User <name> has
# no permissions to ..." (8.x).
DRYRUN_DENIED = re.compile(r"(This user|User \S+) has no permissions to ")

# enable-debug-command no (7.0+) refuses DEBUG for everyone before the ACL check:
# the real try shows that refusal, DRYRUN the ACL's.
PROTECTED = {"DEBUG": "-ERR DEBUG command not allowed"}


def grants(user: dict, command: str) -> bool:
    """Whether the user's own rules grant the command by name or by its category."""
    rules = [r if isinstance(r, str) else r["rule"] for r in user.get("commands", [])]
    return f"+{command}" in rules or "+@pubsub" in rules or "+@all" in rules


def channel_allowance(name: str, version: tuple[int, ...], command: str) -> str | None:
    """Redis 6.0 has no channel permissions: a user granted PUBLISH/SUBSCRIBE may use every
    channel (the role warns at converge time; its README says what to do)."""
    if version < (6, 2) and grants(USERS[name], command.lower()):
        return "Redis 6.0: no channel permissions (role warning, README 'Redis 6.0: no channel permissions')"
    return None


def probe(pattern: str) -> str:
    return pattern.replace("*", "matrix-probe")


def probes(name: str) -> tuple[str, list[str], list[str]]:
    """The user's own key, the keys under other users' patterns it does not match, and the
    channels of other users (Celery's pidbox among them) it does not match."""
    mine = [k for k in USERS[name].get("keys", []) if not k.startswith("%")]
    everyone = {probe(k) for u in USERS.values() for k in u.get("keys", [])} | {"matrix-outside:probe"}
    foreign = sorted(k for k in everyone if not any(fnmatchcase(k, p) for p in mine))
    channels = {probe(c) for u in USERS.values() for c in u.get("channels", [])} | {"matrix-outside"}
    my_channels = USERS[name].get("channels", [])
    foreign_channels = sorted(c for c in channels if not any(fnmatchcase(c, p) for p in my_channels))
    return (probe(mine[0]) if mine else "matrix-outside:own"), foreign, foreign_channels


def matrix(name: str, version: tuple[int, ...]) -> list[tuple[str, list[str], str | None]]:
    """(what, command words, allowance reason or None) for this user on this version."""
    own, foreign, foreign_channels = probes(name)
    sort_key = foreign[0] if foreign else "matrix-outside:probe"
    rows = [
        (what, [w.format(own=own, foreign=sort_key) for w in words], ALLOWED.get((name, what)))
        for what, words, since in DANGEROUS
        if version >= since
    ]
    for key in foreign:
        rows += [(f"GET {key}", ["GET", key], None), (f"SET {key}", ["SET", key, "x"], None)]
    for channel in foreign_channels:
        for command in ("PUBLISH", "SUBSCRIBE"):
            words = [command, channel, "x"] if command == "PUBLISH" else [command, channel]
            rows.append((f"{command} {channel}", words, channel_allowance(name, version, command)))
    return rows


def as_user(remote, name: str, commands: list[list[str]], multi: bool = True) -> list[str]:
    kw = {"address": remote.address, "port": remote.port, "user": name, "commands": commands, "multi": multi}
    return run_client(remote.host, "redis_try", {"REDIS_PASSWORD": USERS[name]["password"]}, **kw)["replies"]


def refused(what: str, reply: str, version: tuple[int, ...]) -> bool:
    return reply.startswith("-NOPERM") or (version >= (7, 0) and reply.startswith(PROTECTED.get(what, "-NOPERM")))


def as_expected(what: str, reply: str, reason: str | None, version: tuple[int, ...]) -> bool:
    """Allowed where an allowance says so, refused everywhere else."""
    return not refused(what, reply, version) if reason else refused(what, reply, version)


@pytest.mark.converged_state
def test_matrix_covers_every_user_of_the_acl_file(server):
    """The matrix below runs for exactly the users Redis has (besides default and admin)."""
    live = set(admin(server, "ACL", "USERS").split()) - {"default", "admin"}
    assert live == set(USERS)
    assert {"app_broker", "app_results", "app_cache", "app_data", "app_monitor"} <= live


@pytest.mark.converged_state
@pytest.mark.parametrize("name", sorted(USERS))
def test_user_is_refused_every_dangerous_command(remote, version, name):
    rows = matrix(name, version)
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
    rows = [(what, words) for what, words, reason in matrix(name, version) if what in REAL and not reason]
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
    rows = matrix(name, version)
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
