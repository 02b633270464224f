"""Helpers for testinfra scenarios that talk to a hardened Redis over the network.

The scenario's molecule.yml is the one source of hosts, users and passwords: the
tests read it instead of repeating them.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import testinfra
import yaml

REPO = Path(__file__).resolve().parents[2]


def load_scenario(scenario_dir: Path) -> dict[str, Any]:
    """molecule.yml, with provisioner.inventory.group_vars filled from the
    linked group_vars folder when the scenario links one."""
    scenario = yaml.safe_load((scenario_dir / "molecule.yml").read_text())
    inventory = scenario["provisioner"].setdefault("inventory", {})
    linked = inventory.get("links", {}).get("group_vars")
    if linked:
        folder = (scenario_dir / linked).resolve()
        inventory["group_vars"] = {f.stem: yaml.safe_load(f.read_text()) for f in sorted(folder.glob("*.yml"))}
    return scenario


def hosts_in_group(scenario: dict[str, Any], group: str) -> list[str]:
    return [p["name"] for p in scenario["platforms"] if group in p.get("groups", [])]


def wait_for(check: Callable[[], Any], timeout: float = 30, interval: float = 0.2) -> Any:
    """Poll until check() returns something truthy; fail with its last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")


@dataclass
class RedisCli:
    """redis-cli on one test host, aimed at the Redis server over the network."""

    host: Any  # testinfra host the command runs on
    address: str
    port: int
    tls_args: str = ""

    def run(self, user: str | None, password: str | None, *args: str):
        auth = ""
        if user is not None:
            auth = f"REDISCLI_AUTH={shlex.quote(password or '')} "
        cmd = (
            # timeout: redis-cli 6.0 keeps waiting after a refused MONITOR.
            f"{auth}timeout 10 redis-cli --no-auth-warning -h {self.address} -p {self.port} "
            f"{self.tls_args} {'--user ' + shlex.quote(user) if user else ''} "
            + " ".join(shlex.quote(a) for a in args)
        )
        return self.host.run(cmd + " </dev/null")

    def out(self, user: str | None, password: str | None, *args: str) -> str:
        r = self.run(user, password, *args)
        return (r.stdout + r.stderr).strip()


def server_version(server) -> tuple[int, ...]:
    fact = json.loads(server.file("/etc/ansible/facts.d/redis_server.fact").content_string)
    return tuple(int(x) for x in fact["version"].split("."))


def host_address(host) -> str:
    """The host's address on the scenario network (first global IPv4 of eth0)."""
    out = host.check_output("ip -4 -o addr show dev eth0 scope global")
    return out.split()[3].split("/")[0]


def ansible_playbook(
    playbook: Path,
    extra_vars: dict[str, Any] | None = None,
    tags: str | None = None,
    verbosity: int = 0,
    limit: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a playbook (e.g. the scenario's converge.yml) on the scenario's inventory."""
    env = dict(os.environ)
    env.setdefault("ANSIBLE_CONFIG", str(REPO / "ansible.cfg"))
    env["ANSIBLE_ROLES_PATH"] = str(REPO / "roles")
    cmd = ["ansible-playbook", "-i", env["MOLECULE_INVENTORY_FILE"], str(playbook)]
    if tags:
        cmd += ["--tags", tags]
    if limit:
        cmd += ["--limit", limit]
    if verbosity:
        cmd.append("-" + "v" * verbosity)
    if extra_vars is not None:
        cmd += ["-e", json.dumps(extra_vars)]
    return subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=600)


def run_playbook(playbook: Path, extra_vars: dict[str, Any] | None = None, **kw: Any) -> str:
    """ansible_playbook() that must succeed; returns its output."""
    proc = ansible_playbook(playbook, extra_vars, **kw)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc.stdout


def get_host(name: str):
    return testinfra.get_host(f"podman://{name}")


def host_fixtures(
    scenario: dict[str, Any], client_group: str = "redis_clients"
) -> tuple[Any, Any, Any, Any]:
    """The session fixtures every Redis scenario has, for its conftest:

    server, client, server_ip, remote = host_fixtures(SCENARIO)

    server: the first host of redis_servers; client: the first of client_group.
    """
    port = scenario["provisioner"]["inventory"]["group_vars"]["redis_servers"].get(
        "redis_server_port", 6379
    )

    @pytest.fixture(scope="session")
    def server():
        return get_host(hosts_in_group(scenario, "redis_servers")[0])

    @pytest.fixture(scope="session")
    def client():
        return get_host(hosts_in_group(scenario, client_group)[0])

    @pytest.fixture(scope="session")
    def server_ip(server) -> str:
        return host_address(server)

    @pytest.fixture(scope="session")
    def remote(client, server_ip) -> RedisCli:
        """redis-cli on the client host, aimed at the server over the network."""
        return RedisCli(client, server_ip, port)

    return server, client, server_ip, remote
