"""Each ACL user can do what it is for and is denied the rest."""

import pytest

from redisops_testlib.playbooks import run_playbook

DENIED_TO_APP = ["FLUSHALL", "FLUSHDB", "CONFIG GET maxmemory", "KEYS *", "SHUTDOWN NOSAVE", "ACL LIST", "MONITOR"]


@pytest.fixture
def app(remote, users):
    def run(*args):
        return remote.out("app", users["app"]["password"], *args)

    return run


def test_app_user_reads_and_writes_its_prefix(app):
    assert app("SET", "app:acl:probe", "42") == "OK"
    assert app("GET", "app:acl:probe") == "42"


@pytest.mark.parametrize("command", DENIED_TO_APP)
def test_app_user_is_denied_dangerous_command(app, command):
    assert "NOPERM" in app(*command.split())


def test_app_user_is_denied_debug(app, version):
    out = app("DEBUG", "SLEEP", "0")
    if version >= (7, 0):
        # enable-debug-command no refuses it for everyone, before the ACL check.
        assert "DEBUG command not allowed" in out
    else:
        assert "NOPERM" in out


def test_app_user_is_denied_other_prefixes(app):
    assert "NOPERM" in app("SET", "celery:other", "x")
    assert "NOPERM" in app("GET", "rl:other")


def test_app_user_is_denied_other_channels(app, version):
    if version >= (6, 2):
        assert "NOPERM" in app("PUBLISH", "other:events", "x")
        assert app("PUBLISH", "app:events", "x") == "0"
    else:
        # Redis 6.0 has no channel permissions: the role warned and any user
        # may publish anywhere. Assert that the documented limitation is real.
        assert app("PUBLISH", "other:events", "x") == "0"


def test_limiter_user_may_only_run_scripts_on_its_keys(remote, users):
    password = users["limiter"]["password"]
    assert "NOPERM" in remote.out("limiter", password, "SET", "rl:direct", "1")
    assert "NOPERM" in remote.out("limiter", password, "EVAL", "return 1", "0")


def test_monitor_user_reads_info_but_no_data(remote, users):
    password = users["monitor"]["password"]
    assert "redis_version:" in remote.out("monitor", password, "INFO", "server")
    assert "NOPERM" in remote.out("monitor", password, "GET", "app:acl:probe")
    # SLOWLOG GET would return slow commands' arguments: values.
    assert remote.out("monitor", password, "SLOWLOG", "LEN").isdigit()
    assert "NOPERM" in remote.out("monitor", password, "SLOWLOG", "GET")
    assert "NOPERM" in remote.out("monitor", password, "SET", "app:x", "1")
    assert "NOPERM" in remote.out("monitor", password, "FLUSHALL")


def test_converge_names_the_channel_risk_where_redis_has_no_channel_rules(scenario, version):
    """On 6.0 the role says at converge time what the missing channel rules mean."""
    out = " ".join(run_playbook(scenario.converge, tags="redis_server:acl", check=True).split())
    assert "Write the ACL file" in out  # it ran the ACL part
    if version >= (6, 2):
        assert "pidbox" not in out
    else:
        assert "WARNING: Redis 6.0" in out
        assert "broadcast control commands (shutdown, pool restart, rate limits) to every worker" in out
        assert "pidbox" in out
