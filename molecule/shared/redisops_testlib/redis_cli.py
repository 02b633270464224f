"""redis-cli two ways: as the admin user on the Redis host (the role's redis-admin,
the one way the tests call it), and from a client host over the network (RedisCli)."""

import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from testinfra.backend.base import CommandResult
from testinfra.host import Host

from redisops_testlib.hosts import STATE_DIR, client_command, run_client
from redisops_testlib.polling import wait_for


def _stdin(cmd: str, stdin: str | None) -> str:
    """cmd fed from the shell command `stdin`, else from /dev/null."""
    return f"{stdin} | {cmd}" if stdin else f"{cmd} </dev/null"


def admin_run(host: Host, *args: str, stdin: str | None = None) -> CommandResult:
    """redis-admin with each argument quoted, whatever its exit status."""
    return host.run(_stdin(shlex.join(["redis-admin", *args]), stdin))


def admin(host: Host, *args: str, stdin: str | None = None) -> str:
    """redis-admin, which must succeed; its output, stripped."""
    r = admin_run(host, *args, stdin=stdin)
    assert r.rc == 0, f"redis-admin {shlex.join(args)}: exit {r.rc}: {r.stdout[-500:]} {r.stderr[-1000:]}"
    return r.stdout.strip()


def ping(host: Host) -> str:
    """PING as the admin user: "PONG", or what the failure said."""
    r = admin_run(host, "PING")
    return (r.stdout or r.stderr).strip()


def admin_pipe(host: Host, stdin: str, commands: int) -> None:
    """redis-admin --pipe fed by the shell command `stdin`: all `commands` acknowledged, no error."""
    r = admin_run(host, "--pipe", stdin=stdin)
    assert r.rc == 0, r.stdout + r.stderr
    assert f"errors: 0, replies: {commands}" in r.stdout + r.stderr, r.stdout + r.stderr


def info(host: Host, section: str) -> dict[str, str]:
    """INFO <section> as the admin user, as a dict."""
    return dict(re.findall(r"^(\w+):(\S+)", admin(host, "INFO", section), re.MULTILINE))


def delete_keys(host: Host, pattern: str) -> int:
    """Delete the keys matching pattern (the admin user may run KEYS from a script); how many."""
    lua = "local n = 0 for _, k in ipairs(redis.call('KEYS', ARGV[1])) do n = n + redis.call('UNLINK', k) end return n"
    return int(admin(host, "EVAL", lua, "0", pattern))


# The TLS files the django_app role gives an app host (roles/django_app/vars/main.yml), as
# host_client.py's environment: a client there talks to Redis over TLS as the app does.
APP_HOST_TLS = {
    "REDIS_TLS_CA": "/etc/redisops/redis-ca.crt",
    "REDIS_TLS_CERT": "/etc/redisops/redis-client.crt",
    "REDIS_TLS_KEY": "/etc/redisops/redis-client.key",
}


@dataclass(frozen=True)
class RedisCli:
    """redis-cli (and host_client.py) on a test host (e.g. the client), aimed at a Redis
    server over the network; over TLS with the files `tls` names (APP_HOST_TLS), if any."""

    host: Host
    address: str
    port: int
    tls: dict[str, str] = field(default_factory=dict)

    def command(self, user: str | None, password: str | None, *args: str, timeout: int = 10) -> str:
        """The shell command; the password in REDISCLI_AUTH, never in argv (timeout: 6.0 hangs on MONITOR)."""
        auth = [] if user is None else ["env", f"REDISCLI_AUTH={password or ''}"]
        argv = [*auth, "timeout", str(timeout), "redis-cli", "--no-auth-warning", "-h", self.address]
        tls = ["--tls", "--cacert", self.tls["REDIS_TLS_CA"]] if self.tls else []
        if self.tls.get("REDIS_TLS_CERT"):
            tls += ["--cert", self.tls["REDIS_TLS_CERT"], "--key", self.tls["REDIS_TLS_KEY"]]
        return shlex.join([*argv, "-p", str(self.port), *tls, *(["--user", user] if user else []), *args])

    def out(self, user: str | None, password: str | None, *args: str, stdin: str | None = None) -> str:
        """What redis-cli printed, stdout and stderr, stripped."""
        r = self.host.run(_stdin(self.command(user, password, *args), stdin))
        return (r.stdout + r.stderr).strip()

    def set_many(self, user: str, password: str, prefix: str, first: int, last: int) -> dict[str, Any]:
        """SET <prefix>:<i> = "value-<i>-" + 200 x, i in [first, last), on one connection:
        {"acked": [i, ...], "refused": {reply: count}}."""
        kw = {"address": self.address, "port": self.port, "user": user, "prefix": prefix}
        env = {"REDIS_PASSWORD": password, **self.tls}
        return run_client(self.host, "redis_set", env, **kw, first=first, last=last)


class HeldConnection:
    """A connection opened now (AUTH + PING) and used again (PING + SET) after a change."""

    def __init__(self, cli: RedisCli, user: str, password: str, tag: str, wait: float = 120) -> None:
        self.host, self.state = cli.host, f"{STATE_DIR}/{tag}"
        kw = {"address": cli.address, "port": cli.port, "user": user, "state": self.state, "wait": wait}
        hold = client_command(cli.host, "redis_hold", {"REDIS_PASSWORD": password, **cli.tls}, **kw)
        cli.host.check_output(f"setsid sh -c {shlex.quote(hold)} >{self.state}.log 2>&1 </dev/null &")

    def _wait(self, suffix: str) -> str:
        return wait_for(lambda: (f := self.host.file(self.state + suffix)).exists and f.content_string)

    def opened(self) -> str:
        """The replies to AUTH and PING ("+OK +PONG")."""
        return self._wait(".ready")

    def use_again(self) -> str:
        """PING and SET on the same connection now: their replies ("+PONG +OK"; "(closed) ..."
        once the server closed the connection)."""
        self.host.check_output(f"touch {self.state}.go")
        return self._wait(".result")
