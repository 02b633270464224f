"""The ha scenario: three nodes each with Redis and Sentinel, one client host. Who is
master, asked of Redis (ROLE) and of the Sentinels, from the client host over the network,
over TLS with the app's client certificate (the scenario's Redis and Sentinels serve TLS
only)."""

import re
import shlex
import time
from dataclasses import dataclass
from typing import Any

from testinfra.host import Host

from redisops_testlib.hosts import STATE_DIR, get_host, host_address, hosts_in_group, server_version, write_file
from redisops_testlib.playbooks import run_playbook
from redisops_testlib.polling import wait_for
from redisops_testlib.redis_cli import APP_HOST_TLS, RedisCli
from redisops_testlib.scenario import REPO, Scenario


@dataclass(frozen=True)
class Node:
    name: str
    host: Host
    address: str


@dataclass(frozen=True)
class Ha:
    """The HA group and the client host, with the scenario's settings (molecule.yml)."""

    nodes: tuple[Node, ...]
    client: Host
    vars: dict[str, Any]
    sentinel_passwords: dict[str, str]
    extra_users: dict[str, str]
    redis_port: int
    sentinel_port: int
    # The client host's TLS files (the app's, APP_HOST_TLS), or {} in plain text.
    tls: dict[str, str]
    # Sentinel 6.2+ has ACL users; 6.0 one shared password (requirepass), no user
    # names, and the nodes' default user is on for it (roles/redis_sentinel README).
    sentinel_acl: bool

    @classmethod
    def load(cls, scenario: Scenario) -> "Ha":
        names = hosts_in_group(scenario, "redis_ha")
        nodes = tuple(Node(n, h, host_address(h)) for n in names for h in [get_host(n)])
        client = get_host(hosts_in_group(scenario, "redis_clients")[0])
        ha_vars = scenario.group_vars("redis_ha")
        users = {u["name"]: u["password"] for u in ha_vars["redisops_redis_extra_acl_users"]}
        passwords = scenario.group_vars("all")["ha_sentinel_passwords"]
        # The wiring (playbooks/group_vars/all/wiring.yml): the Sentinels serve
        # TLS when Redis does.
        sentinel_port = int(ha_vars.get("redis_sentinel_tls_port", 26380)) if scenario.redis_tls else 26379
        tls = dict(APP_HOST_TLS) if scenario.redis_tls else {}
        acl = server_version(nodes[0].host) >= (6, 2)
        return cls(nodes, client, ha_vars, passwords, users, scenario.redis_port, sentinel_port, tls, acl)

    @property
    def cli_tls(self) -> str:
        """redis-cli's TLS flags on the client host (for scripts that call redis-cli)."""
        f = self.tls
        if not f:
            return ""
        return shlex.join(
            ["--tls", "--cacert", f["REDIS_TLS_CA"], "--cert", f["REDIS_TLS_CERT"], "--key", f["REDIS_TLS_KEY"]]
        )

    @property
    def master_name(self) -> str:
        return self.vars.get("redis_sentinel_master_name", "redisops")

    @property
    def down_after_s(self) -> float:
        return self.vars["redis_sentinel_down_after_ms"] / 1000

    def node(self, address: str) -> Node:
        return next(n for n in self.nodes if n.address == address)

    def redis(self, node: Node) -> RedisCli:
        return RedisCli(self.client, node.address, self.redis_port, self.tls)

    def sentinel(self, node: Node) -> RedisCli:
        return RedisCli(self.client, node.address, self.sentinel_port, self.tls)

    def role(self, node: Node) -> str:
        """ROLE's first word as the watcher user ("master", "slave"), or the error."""
        out = self.redis(node).out("watcher", self.extra_users["watcher"], "ROLE")
        return out.splitlines()[0] if out else ""

    def masters(self) -> list[str]:
        return [n.name for n in self.nodes if self.role(n) == "master"]

    def sentinel_login(self, user: str) -> tuple[str, str]:
        """How to log in to a Sentinel as its ACL user `user` (admin, monitor,
        sentinel-client...): (user, password); on 6.0, no ACL: ("", the shared password)."""
        if not self.sentinel_acl:
            return "", self.sentinel_passwords["shared"]
        return user, self.sentinel_passwords[user.removeprefix("sentinel-")]

    def sentinel_master(self, node: Node, user: str = "monitor") -> str:
        """SENTINEL GET-MASTER-ADDR-BY-NAME as `user`: the address, or the error."""
        out = self.sentinel(node).out(
            *self.sentinel_login(user), "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name
        )
        return out.splitlines()[0] if out else ""

    def agreed_master(self) -> Node | None:
        """The master every Sentinel names, if they all name the same one."""
        answers = {self.sentinel_master(n) for n in self.nodes}
        if len(answers) != 1:
            return None
        answer = answers.pop()
        return self.node(answer) if re.match(r"^[0-9.]+$", answer) else None

    def replication(self, node: Node) -> dict[str, str]:
        out = self.redis(node).out("watcher", self.extra_users["watcher"], "INFO", "replication")
        return dict(re.findall(r"^(\w+):(\S+)", out, re.MULTILINE))

    def sentinel_state(self, node: Node) -> dict[str, str]:
        """SENTINEL MASTER <name> on the node's Sentinel, as the admin (redis-sentinel-admin)."""
        lines = node.host.check_output(f"redis-sentinel-admin SENTINEL MASTER {self.master_name}").splitlines()
        return dict(zip(lines[0::2], lines[1::2], strict=False))

    def app(self, node: Node, *args: str) -> str:
        return self.redis(node).out("app", self.extra_users["app"], *args)


class RoleSampler:
    """ROLE of every node, every 100 ms, from the client host, in the background:
    one line per sample, "<epoch ms> <role of node 1> <role of node 2> ...".
    One redis-cli per node and sample, all started at once."""

    def __init__(self, ha: Ha, tag: str) -> None:
        self.ha, self.path = ha, f"{STATE_DIR}/{tag}.samples"
        probes = " ".join(
            f"$(REDISCLI_AUTH=$PW timeout 1 redis-cli --no-auth-warning -h {n.address} -p {ha.redis_port} {ha.cli_tls}"
            " --user watcher ROLE"
            " 2>/dev/null | head -n 1 | cut -d' ' -f1 | grep . || echo down)"
            for n in ha.nodes
        )
        script = f'while [ ! -e {self.path}.stop ]; do echo "$(date +%s%3N) {probes}" >>{self.path}; sleep 0.1; done'
        write_file(ha.client, f"{STATE_DIR}/{tag}.sh", script)
        ha.client.check_output(f"rm -f {self.path} {self.path}.stop")
        env = f"PW={shlex.quote(ha.extra_users['watcher'])}"
        ha.client.check_output(f"{env} setsid bash {STATE_DIR}/{tag}.sh >/dev/null 2>&1 </dev/null &")

    def wait_started(self, timeout: float = 30) -> None:
        """Wait for the first sample (on a loaded machine the background loop starts late)."""
        wait_for(lambda: self.ha.client.run(f"test -s {self.path}").rc == 0, timeout=timeout)

    def stop(self) -> list[list[str]]:
        self.ha.client.check_output(f"touch {self.path}.stop")
        time.sleep(0.5)
        return [line.split() for line in self.ha.client.file(self.path).content_string.splitlines() if line]


def app_pids(host: Host) -> dict[str, str]:
    """MainPID of every unit of the app on an app host (web, workers, beat, consumers);
    AssertionError ("not yet" for wait_for) while one is not running, e.g. in its restart
    delay."""
    units = host.check_output("systemctl list-units --type=service --all --no-legend --plain 'redisops-*'")
    names = [line.split()[0] for line in units.splitlines() if line.strip()]
    states = {
        n: dict(line.split("=", 1) for line in host.check_output(f"systemctl show -p SubState,MainPID {n}").split())
        for n in names
    }
    assert names, "no app unit"
    assert all(s["SubState"] == "running" for s in states.values()), states
    return {n: s["MainPID"] for n, s in states.items()}


def app_smoke() -> str:
    """playbooks/smoke.yml: beat's heartbeat, /readyz through the proxy, manage.py smoke."""
    out = run_playbook(REPO / "playbooks" / "smoke.yml")
    assert "smoke: all checks passed" in out, out[-3000:]
    return out
