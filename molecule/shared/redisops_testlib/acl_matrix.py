"""The ACL matrix: the commands no application user may run, the probes of other
users' keys and channels, and how a reply is judged. Used by the scenarios that
prove the rendered ACL file (default on every Redis generation, production);
each gives its users and its own allowances."""

import re
from fnmatch import fnmatchcase
from typing import Any

Users = dict[str, dict[str, Any]]

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


def channel_allowance(users: Users, name: str, version: tuple[int, ...], command: str) -> str | None:
    """Redis 6.0 has no channel permissions: a user granted PUBLISH/SUBSCRIBE may use every
    channel (the role warns at converge time; its README says what to do)."""
    if version < (6, 2) and grants(users[name], command.lower()):
        return "Redis 6.0: no channel permissions (role warning, README 'Redis 6.0: no channel permissions')"
    return None


def probe(pattern: str) -> str:
    return pattern.replace("*", "matrix-probe")


def probes(users: Users, name: str) -> tuple[str, list[str], list[str]]:
    """The user's own key, the keys under other users' patterns it does not match, and the
    channels of other users (Celery's pidbox among them) it does not match."""
    mine = [k for k in users[name].get("keys", []) if not k.startswith("%")]
    everyone = {probe(k) for u in users.values() for k in u.get("keys", [])} | {"matrix-outside:probe"}
    foreign = sorted(k for k in everyone if not any(fnmatchcase(k, p) for p in mine))
    channels = {probe(c) for u in users.values() for c in u.get("channels", [])} | {"matrix-outside"}
    my_channels = users[name].get("channels", [])
    foreign_channels = sorted(c for c in channels if not any(fnmatchcase(c, p) for p in my_channels))
    return (probe(mine[0]) if mine else "matrix-outside:own"), foreign, foreign_channels


def matrix(
    users: Users, name: str, version: tuple[int, ...], allowed: dict[tuple[str, str], str]
) -> list[tuple[str, list[str], str | None]]:
    """(what, command words, allowance reason or None) for this user on this version;
    allowed: the scenario's (user, command) allowances with their reasons."""
    own, foreign, foreign_channels = probes(users, name)
    sort_key = foreign[0] if foreign else "matrix-outside:probe"
    rows = [
        (what, [w.format(own=own, foreign=sort_key) for w in words], allowed.get((name, what)))
        for what, words, since in DANGEROUS
        if version >= since
    ]
    for key in foreign:
        rows += [(f"GET {key}", ["GET", key], None), (f"SET {key}", ["SET", key, "x"], None)]
    for channel in foreign_channels:
        for command in ("PUBLISH", "SUBSCRIBE"):
            words = [command, channel, "x"] if command == "PUBLISH" else [command, channel]
            rows.append((f"{command} {channel}", words, channel_allowance(users, name, version, command)))
    return rows


def refused(what: str, reply: str, version: tuple[int, ...]) -> bool:
    return reply.startswith("-NOPERM") or (version >= (7, 0) and reply.startswith(PROTECTED.get(what, "-NOPERM")))


def as_expected(what: str, reply: str, reason: str | None, version: tuple[int, ...]) -> bool:
    """Allowed where an allowance says so, refused everywhere else."""
    return not refused(what, reply, version) if reason else refused(what, reply, version)
