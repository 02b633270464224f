"""The one declaration of the Redis ACL users this app needs.

Every key prefix and channel pattern the code uses comes from the constants
below, and each ACL user may touch only its own. Its export for Ansible,
``playbooks/group_vars/all/app_redis_acl.yml``, is generated from this module
(``make acl-export``); a test fails when the two differ. The playbooks give it
to the redis_server role (one ACL user each, with the vault's password) and to
the django_app role (one URL each). The test Redis runs with exactly these
users, so a missing permission fails the test suite.

Rules are rendered per server version: channel rules (``&pattern``) exist from
Redis 6.2 on; on 6.0 every user may use every channel. A rule that exists only
on some versions is a ``Versioned`` rule (the export writes it as a mapping
``{rule, since, before}``, which the redis_server role renders the same way):
Redis 6.0 rejects a command name it does not know (FUNCTION) and cannot take
one subcommand away from a command (``-client|tracking``).
https://redis.io/docs/latest/operate/oss_and_stack/management/security/acl/
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, fields

# Key prefixes (the code builds every key from these).
BROKER_PREFIX = "broker:"  # kombu global_keyprefix: queues, unacked, bindings
RESULTS_PREFIX = "results:"  # Celery result backend global_keyprefix
CACHE_PREFIX = "cache"  # django-redis KEY_PREFIX -> keys "cache:<version>:<key>"
APP_PREFIX = "app:"  # our data: rate limits, streams, pubsub log, heartbeat

# kombu's PSUBSCRIBE patterns ("/<db>.<exchange>"); the broker URL must use
# DB 0 (settings refuse another), since ACL compares these literally.
BROKER_DB = 0
BROKER_PSUBSCRIBE_PATTERNS = (
    f"/{BROKER_DB}.celery.pidbox",
    f"/{BROKER_DB}.celeryev/worker.*",
)

# Pub/Sub channels of the app: PUBLISH app:events:<topic>, listener PSUBSCRIBEs
# the pattern.
PUBSUB_CHANNEL_PREFIX = f"{APP_PREFIX}events:"
PUBSUB_PATTERN = f"{PUBSUB_CHANNEL_PREFIX}*"


@dataclass(frozen=True)
class Versioned:
    """An ACL rule for the Redis versions ``since`` <= version < ``before``
    (either bound may be empty: no bound)."""

    rule: str
    since: str = ""
    before: str = ""

    def applies(self, redis_version: tuple[int, int]) -> bool:
        return (not self.since or redis_version >= _version(self.since)) and (
            not self.before or redis_version < _version(self.before)
        )


Rule = str | Versioned


def _version(text: str) -> tuple[int, int]:
    major, minor = text.split(".")[:2]
    return int(major), int(minor)


def rules_for(rules: tuple[Rule, ...], redis_version: tuple[int, int]) -> list[str]:
    """The rules that exist on this Redis version, as ACL rule text."""
    return [
        r if isinstance(r, str) else r.rule
        for r in rules
        if isinstance(r, str) or r.applies(redis_version)
    ]


# Appended after the commands of a user with deny_dangerous: no rule can grant
# these by accident. The redis_server role appends its
# redis_server_acl_denied_commands instead, whose default is this list
# (without the '-'; tests/test_redis_acl.py keeps the two equal). Why each:
# roles/redis_server/README.md, "What every application user is denied".
DENIED_EVERYWHERE: tuple[Rule, ...] = (
    "-@admin",
    "-@dangerous",  # FLUSHALL FLUSHDB KEYS CONFIG DEBUG SHUTDOWN ACL MONITOR ...
    "-flushall",
    "-flushdb",
    "-keys",
    "-debug",
    "-config",
    "-shutdown",
    "-monitor",
    # Key discovery: ACL key patterns do not filter the names these return.
    "-scan",
    "-randomkey",
    # Channel discovery (PUBSUB CHANNELS/NUMPAT/NUMSUB/SHARD*): names of every
    # user's channels.
    "-pubsub",
    # SORT ... BY/GET reads keys outside the user's patterns on 6.0 (7.0+
    # refuses that, and SORT is @dangerous there).
    "-sort",
    # Function libraries are server-wide, outlive restarts (RDB/AOF) and are
    # not bound to key patterns; FUNCTION LOAD/DELETE/FLUSH/RESTORE sit in
    # @write on 7.0+. No FUNCTION on 6.0.
    Versioned("-function", since="7.0"),
    Versioned("-fcall", since="7.0"),
    Versioned("-fcall_ro", since="7.0"),
    # CLIENT TRACKING ... BCAST pushes invalidations naming keys under every
    # prefix (@connection on 7.0+; on 6.0 all of CLIENT is @admin).
    Versioned("-client|tracking", since="7.0"),
)


@dataclass(frozen=True)
class AclUser:
    """One Redis ACL user: who connects with it, and what it may do."""

    name: str
    env: str  # the setting/env variable whose URL carries this user
    description: str
    keys: tuple[str, ...]  # key patterns (~pattern)
    channels: tuple[str, ...]  # Pub/Sub channel patterns (&pattern, Redis >= 6.2)
    commands: tuple[Rule, ...]  # command rules, applied in order after -@all
    # True: DENIED_EVERYWHERE follows the commands. False only for a user
    # whose commands are single read-only commands that sit in @dangerous
    # (INFO, SLOWLOG LEN): it gets exactly those.
    deny_dangerous: bool = True

    def rule(self, redis_version: tuple[int, int] = (7, 0)) -> str:
        """The ACL SETUSER rule text (without 'on' and the password), as the
        test Redis gets it; the redis_server role renders the same fields."""
        parts = ["resetkeys", *(f"~{k}" for k in self.keys)]
        if redis_version >= (6, 2):
            parts += ["resetchannels", *(f"&{c}" for c in self.channels)]
        parts += ["-@all", *rules_for(self.commands, redis_version)]
        if self.deny_dangerous:
            parts += rules_for(DENIED_EVERYWHERE, redis_version)
        return " ".join(parts)


_DATA_COMMANDS = (
    "+@read",
    "+@write",
    "+@transaction",
    # AUTH HELLO PING SELECT CLIENT SETNAME/ID ... (the deny list takes away
    # CLIENT TRACKING on 7.0+; on 6.0 CLIENT as a whole is @admin).
    "+@connection",
)
# Pub/Sub by name, not +@pubsub: that category also holds PUBSUB (channel
# discovery) and, on 7.0+, the shard channel commands nobody here uses.
# Leaving a subscription is always allowed: it affects only the connection.
_UNSUBSCRIBE = ("+unsubscribe", "+punsubscribe")

USERS: tuple[AclUser, ...] = (
    AclUser(
        name="app_broker",
        env="REDIS_BROKER_URL",
        description="Celery broker (kombu): task queues, unacked index, "
        "remote-control fanout. Producers (web) and workers.",
        keys=(f"{BROKER_PREFIX}*",),
        # PUBLISH/SUBSCRIBE match channel globs, but PSUBSCRIBE patterns must
        # equal an allowed pattern literally: kombu's fanout (remote control)
        # and event (gossip) subscriptions, for broker DB 0.
        channels=(
            f"{BROKER_PREFIX}*",
            *(f"{BROKER_PREFIX}{p}" for p in BROKER_PSUBSCRIBE_PATTERNS),
        ),
        commands=(
            *_DATA_COMMANDS,
            # kombu's fanout: PUBLISH, and PSUBSCRIBE even for one channel
            "+publish",
            "+psubscribe",
            *_UNSUBSCRIBE,
            # kombu's unacked mutex is a redis-py Lock: release is a Lua script
            "+evalsha",
            "+script|load",
        ),
    ),
    AclUser(
        name="app_results",
        env="REDIS_RESULT_URL",
        description="Celery result backend: task results, and the channels "
        "the result consumer subscribes to.",
        keys=(f"{RESULTS_PREFIX}*",),
        channels=(f"{RESULTS_PREFIX}*",),
        # A stored result is PUBLISHed on its key; result.get() SUBSCRIBEs.
        commands=(*_DATA_COMMANDS, "+publish", "+subscribe", *_UNSUBSCRIBE),
    ),
    AclUser(
        name="app_cache",
        env="REDIS_CACHE_URL",
        description="Django cache (django-redis). cache.clear() (FLUSHDB), "
        "delete_pattern() and iter_keys() (SCAN) are denied: delete by key.",
        keys=(f"{CACHE_PREFIX}:*",),
        channels=(),
        # django-redis runs a Lua script (EVAL, never EVALSHA) for incr()
        commands=(*_DATA_COMMANDS, "+eval"),
    ),
    AclUser(
        name="app_data",
        env="REDIS_APP_URL",
        description="App data: rate limiter (Lua via EVALSHA, SCRIPT LOAD), "
        "streams and consumer groups, Pub/Sub publish/listen, heartbeat.",
        keys=(f"{APP_PREFIX}*",),
        # PSUBSCRIBE needs the literal pattern; SUBSCRIBE/PUBLISH match the glob.
        channels=(f"{APP_PREFIX}*", PUBSUB_PATTERN),
        commands=(
            *_DATA_COMMANDS,
            "+publish",
            "+subscribe",
            "+psubscribe",
            *_UNSUBSCRIBE,
            # redisops.luascripts: EVALSHA, SCRIPT LOAD on NOSCRIPT; never EVAL
            "+evalsha",
            "+script|load",
            # Redis's clock (Pub/Sub log, task ledger)
            "+time",
        ),
    ),
    AclUser(
        name="app_monitor",
        env="REDIS_MONITOR_URL",
        description="Monitoring, read-only: server stats, queue/stream "
        "lengths, consumer-group lag. Cannot write or read values, but a "
        "stream's first and last entries (XINFO STREAM).",
        keys=("*",),
        channels=(),
        commands=(
            "+ping",
            "+hello",
            # The Redis exporter SELECTs the key's database before TYPE/LLEN
            # (prometheus-redis-exporter's single-key checks).
            "+select",
            "+info",
            "+latency|latest",
            # Not SLOWLOG GET: it returns the arguments of slow commands,
            # values included (task payloads, stream entries).
            "+slowlog|len",
            "+dbsize",
            "+llen",
            "+xlen",
            # The exporter's stream checks (--check-single-streams) send
            # exactly these three. XINFO STREAM returns the first and last
            # entries with their values; the rest of XINFO (HELP) is not
            # granted, nor XRANGE/XREAD.
            "+xinfo|stream",
            "+xinfo|groups",
            "+xinfo|consumers",
            "+xpending",
            "+scard",
            "+zcard",
            "+type",
            "+ttl",
        ),
        deny_dangerous=False,
    ),
    AclUser(
        name="app_budget",
        env="REDIS_BUDGET_URL",
        description="The web's storage budget: INFO (used_memory, maxmemory) "
        "and PING only. No key, no channel, no other command.",
        keys=(),
        channels=(),
        commands=("+ping", "+info"),
        deny_dangerous=False,
    ),
)

USERS_BY_ENV = {u.env: u for u in USERS}
USERS_BY_NAME = {u.name: u for u in USERS}

# The processes of the app (APP_PROCESS) and the users each connects as: a
# process gets the URLs of these users only (the django_app role writes one
# env file per process from this), and production settings refuse to start
# without each of them. "manage" is the operators' manage.py (status, smoke,
# migrate, replay_dlq), run as root from a root-only env file: smoke logs in
# as every user.
#   web:       enqueues (broker), reads results, cache, app data, the budget
#   worker:    consumes (broker), stores results, app data in the tasks
#   beat:      sends the schedule (broker); its heartbeat is a task a worker
#              runs, and its tasks ignore results
#   consumers: stream consumer and Pub/Sub listener (app data)
PROCESS_USERS: dict[str, tuple[str, ...]] = {
    "web": ("app_broker", "app_results", "app_cache", "app_data", "app_budget"),
    "worker": ("app_broker", "app_results", "app_data"),
    "beat": ("app_broker",),
    "consumers": ("app_data",),
    "manage": tuple(u.name for u in USERS),
}


def process_users(process: str) -> tuple[AclUser, ...]:
    """The users ``process`` connects as; ValueError naming the known ones."""
    if process not in PROCESS_USERS:
        raise ValueError(
            f"unknown process {process!r}: one of {', '.join(PROCESS_USERS)}"
        )
    return tuple(USERS_BY_NAME[name] for name in PROCESS_USERS[process])


# Where the export lives, from the repository root, and the variable it sets.
EXPORT_PATH = "playbooks/group_vars/all/app_redis_acl.yml"
EXPORT_VARIABLE = "redisops_app_acl"


def as_data() -> dict:
    """The declaration as plain data: what the export holds, per user the
    fields of a redis_server_acl_users item plus the URL variable (env) and a
    description."""

    def plain(value: object) -> object:
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        if isinstance(value, Versioned):
            return {k: v for k, v in asdict(value).items() if v}
        return value

    return {
        "users": [
            {f.name: plain(getattr(u, f.name)) for f in fields(AclUser)} for u in USERS
        ],
        "processes": {p: list(names) for p, names in PROCESS_USERS.items()},
    }


def render_yaml() -> str:
    """YAML text of the export (needs PyYAML, a test/dev dependency)."""
    import yaml

    header = (
        "# Generated from django_app/redisops/redis_acl.py: do not edit.\n"
        "# Regenerate: make acl-export. A test in django_app fails while it is stale.\n"
        "# The app's Redis ACL users, wired to the redis_server and django_app\n"
        "# roles in playbooks/group_vars/all/wiring.yml.\n"
        "---\n"
    )

    class IndentedDumper(yaml.SafeDumper):
        """Lists indented under their key, as yamllint wants them."""

        def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
            super().increase_indent(flow, False)

    body = yaml.dump(
        {EXPORT_VARIABLE: as_data()}, Dumper=IndentedDumper, sort_keys=False, width=100
    )
    return header + body


if __name__ == "__main__":
    sys.stdout.write(render_yaml())
