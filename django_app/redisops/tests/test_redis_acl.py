"""The ACL declaration: exported file in sync, and each user limited to its job."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
import yaml
from redis.backoff import NoBackoff
from redis.retry import Retry

from redisops import redis_acl
from redisops.tests.redis_proc import RedisProcess, password

REPO = Path(__file__).resolve().parents[3]
EXPORT = REPO / redis_acl.EXPORT_PATH
ROLE_DEFAULTS = REPO / "roles/redis_server/defaults/main.yml"


def login(server: RedisProcess, user: str) -> redis.Redis:
    return redis.Redis(
        port=server.port, username=user, password=password(user), decode_responses=True
    )


def test_ansible_export_matches_the_python_declaration() -> None:
    assert EXPORT.read_text() == redis_acl.render_yaml(), (
        f"{redis_acl.EXPORT_PATH} is stale: make acl-export"
    )
    users = yaml.safe_load(EXPORT.read_text())[redis_acl.EXPORT_VARIABLE]["users"]
    assert {u["name"] for u in users} == {u.name for u in redis_acl.USERS}
    # Stated for every user, never guessed from its rules.
    assert all(isinstance(u["deny_dangerous"], bool) for u in users)


def test_every_user_has_its_own_url_variable() -> None:
    envs = [u.env for u in redis_acl.USERS]
    assert len(set(envs)) == len(envs)
    assert set(envs) >= {
        "REDIS_BROKER_URL",
        "REDIS_RESULT_URL",
        "REDIS_CACHE_URL",
        "REDIS_APP_URL",
    }


def test_redis60_rules_have_no_channel_rules() -> None:
    for user in redis_acl.USERS:
        assert "&" not in user.rule((6, 0))
        assert "resetchannels" in user.rule((7, 0))


def test_only_users_without_deny_dangerous_skip_the_deny_list() -> None:
    for version in ((6, 0), (7, 0), (8, 0)):
        deny = " ".join(redis_acl.rules_for(redis_acl.DENIED_EVERYWHERE, version))
        for user in redis_acl.USERS:
            assert user.rule(version).endswith(deny) == user.deny_dangerous, user.name
    assert [u.name for u in redis_acl.USERS if not u.deny_dangerous] == [
        "app_monitor",
        "app_budget",
    ]


def test_deny_list_is_the_redis_server_roles_default() -> None:
    """The test Redis denies what production denies: the role's default
    redis_server_acl_denied_commands (names, '-' added by the role; a mapping is
    a rule for some versions), item for item."""
    defaults = yaml.safe_load(ROLE_DEFAULTS.read_text())
    role = [
        f"-{item}"
        if isinstance(item, str)
        else redis_acl.Versioned(
            f"-{item['rule']}", item.get("since", ""), item.get("before", "")
        )
        for item in defaults["redis_server_acl_denied_commands"]
    ]
    assert role == list(redis_acl.DENIED_EVERYWHERE)


def test_rules_name_only_commands_the_version_knows() -> None:
    """Redis 6.0 rejects FUNCTION/FCALL (7.0 commands) and cannot take one
    subcommand away (-client|tracking): those rules start at 7.0."""
    for user in redis_acl.USERS:
        old, new = user.rule((6, 0)).split(), user.rule((7, 0)).split()
        assert not {"-function", "-fcall", "-fcall_ro", "-client|tracking"} & set(old)
        if user.deny_dangerous:
            assert {"-function", "-fcall", "-fcall_ro", "-client|tracking"} <= set(new)
        assert not [r for r in old if r.startswith("-") and "|" in r], user.name


def test_default_user_cannot_authenticate(redis_server: RedisProcess) -> None:
    no_retry = Retry(NoBackoff(), 0)
    client = redis.Redis(
        port=redis_server.port,
        username="default",
        password="x",  # noqa: S106 - a wrong password on purpose
        retry=no_retry,
    )
    with pytest.raises(redis.AuthenticationError, match="invalid username-password"):
        client.ping()
    anonymous = redis.Redis(port=redis_server.port, retry=no_retry)
    with pytest.raises(redis.AuthenticationError, match="Authentication required"):
        anonymous.ping()


FUNCTION_LIBRARY = (
    "#!lua name=probe\nredis.register_function('p', function() return 1 end)"
)
DANGEROUS = [
    ("FLUSHALL",),
    ("FLUSHDB",),
    ("CONFIG", "GET", "*"),
    ("CONFIG", "SET", "maxmemory", "1"),
    ("KEYS", "*"),
    ("DEBUG", "SLEEP", "0"),
    ("SHUTDOWN", "NOSAVE"),
    ("ACL", "LIST"),
    ("MONITOR",),
    ("SCRIPT", "FLUSH"),
    # Key and channel discovery: names under every user's prefix.
    ("SCAN", "0"),
    ("RANDOMKEY",),
    ("PUBSUB", "CHANNELS"),
    ("PUBSUB", "NUMPAT"),
    ("SORT", "app:sort-probe", "BY", "nosort", "GET", "broker:*"),
    # Function libraries: server-wide, persistent, in @write on 7.0+.
    ("FUNCTION", "LOAD", FUNCTION_LIBRARY),
    ("FUNCTION", "DELETE", "probe"),
    ("FUNCTION", "FLUSH"),
    ("FUNCTION", "RESTORE", "x"),
    ("FCALL", "p", "0"),
    ("FCALL_RO", "p", "0"),
    # Invalidations for every prefix's keys.
    ("CLIENT", "TRACKING", "ON", "BCAST"),
    ("CLIENT", "KILL", "USER", "app_broker"),
]


@pytest.mark.parametrize("user", [u.name for u in redis_acl.USERS])
@pytest.mark.parametrize("command", DANGEROUS, ids=lambda c: " ".join(c[:2]))
def test_app_users_are_denied_dangerous_commands(
    redis_server: RedisProcess, user: str, command: tuple[str, ...]
) -> None:
    with pytest.raises(redis.exceptions.NoPermissionError, match="no permissions"):
        login(redis_server, user).execute_command(*command)


@pytest.mark.parametrize(
    ("user", "own", "foreign"),
    [
        ("app_broker", "broker:x", "app:x"),
        ("app_results", "results:x", "broker:x"),
        ("app_cache", "cache:1:x", "app:x"),
        ("app_data", "app:x", "results:x"),
    ],
)
def test_users_write_only_their_own_prefix(
    redis_server: RedisProcess, user: str, own: str, foreign: str
) -> None:
    client = login(redis_server, user)
    assert client.set(own, "1", ex=10)
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.set(foreign, "1")
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.get(foreign)


def test_app_user_cannot_list_key_names(redis_server: RedisProcess) -> None:
    with pytest.raises(redis.exceptions.NoPermissionError):
        login(redis_server, "app_data").scan()


@pytest.mark.parametrize(
    ("user", "command"),
    [
        ("app_data", ("EVAL", "return 1", "0")),
        ("app_cache", ("EVALSHA", "0" * 40, "0")),
    ],
)
def test_users_are_denied_scripting_they_do_not_use(
    redis_server: RedisProcess, user: str, command: tuple[str, ...]
) -> None:
    with pytest.raises(redis.exceptions.NoPermissionError):
        login(redis_server, user).execute_command(*command)


def test_app_user_channels_are_limited(redis_server: RedisProcess) -> None:
    client = login(redis_server, "app_data")
    assert client.publish(redis_acl.PUBSUB_CHANNEL_PREFIX + "t", "x") == 0
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.publish("broker:/0.celery.pidbox", "x")


def test_budget_user_reads_info_and_nothing_else(
    redis_server: RedisProcess, admin_redis: redis.Redis
) -> None:
    """The web's storage budget: INFO and PING, no key, no value, no write."""
    admin_redis.set("app:budget-test", "secret")
    client = login(redis_server, "app_budget")
    assert client.ping()
    assert int(client.info("memory")["used_memory"]) > 0
    for command in (
        ("GET", "app:budget-test"),
        ("LLEN", "broker:x"),
        ("SET", "x", "1"),
        ("PUBLISH", "app:events:x", "1"),
        ("CLIENT", "LIST"),
        ("CONFIG", "GET", "maxmemory"),
    ):
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.execute_command(*command)


def test_each_process_uses_declared_users_only() -> None:
    """Every user serves some process; "manage" (root's smoke and status) has
    them all; the monitor user only it."""
    names = {u.name for u in redis_acl.USERS}
    used = {n for users in redis_acl.PROCESS_USERS.values() for n in users}
    assert used == names
    assert set(redis_acl.PROCESS_USERS["manage"]) == names
    assert [p for p, us in redis_acl.PROCESS_USERS.items() if "app_monitor" in us] == [
        "manage"
    ]


def test_monitor_user_reads_lengths_but_not_values(
    redis_server: RedisProcess, admin_redis: redis.Redis
) -> None:
    admin_redis.rpush("broker:monitor-test", "secret")
    client = login(redis_server, "app_monitor")
    assert client.ping()
    assert client.llen("broker:monitor-test") == 1
    assert client.execute_command("SELECT", 0)
    assert "redis_version" in client.info("server")
    assert isinstance(client.slowlog_len(), int)
    # SLOWLOG GET would return slow commands' arguments: values.
    for command in (
        ("LRANGE", "broker:monitor-test", 0, -1),
        ("SLOWLOG", "GET"),
        ("SET", "x", "1"),
    ):
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.execute_command(*command)
