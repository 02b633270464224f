"""The scenario's hosts: reaching them, reading them, putting files and programs on them."""

import hashlib
import json
import shlex
from pathlib import Path
from typing import Any

import testinfra
import testinfra.backend
from testinfra.backend.base import CommandResult
from testinfra.backend.podman import PodmanBackend
from testinfra.host import Host

from redisops_testlib.container_exec import exec_argv
from redisops_testlib.scenario import Scenario

# The tests' files on a host (not /tmp: a tmpfs that a host restart empties).
STATE_DIR = "/var/tmp/redisops-tests"
_installed: set[tuple[str, str]] = set()


class RuncPodmanBackend(PodmanBackend):
    """testinfra's podman:// hosts, each command through `runc exec` (container_exec)."""

    def run(self, command: str, *args: str, **kwargs: Any) -> CommandResult:
        cmd = self.get_command(command, *args)
        argv = [*exec_argv(self.name, self.user), "/bin/sh", "-c", cmd]
        out = self.run_local(" ".join(["%s"] * len(argv)), *argv)
        out.command = self.encode(cmd)
        return out


# Every podman:// host of the tests (get_host below, and the verifier's --hosts).
testinfra.backend.BACKENDS["podman"] = f"{__name__}.{RuncPodmanBackend.__name__}"


def get_host(name: str) -> Host:
    return testinfra.get_host(f"podman://{name}")


def hosts_in_group(scenario: Scenario, group: str) -> list[str]:
    """The scenario's host names in `group`, in molecule.yml's order."""
    return [p["name"] for p in scenario.config["platforms"] if group in p.get("groups", [])]


def host_address(host: Host) -> str:
    """The host's address on the scenario network (first global IPv4 of eth0)."""
    return host.check_output("ip -4 -o addr show dev eth0 scope global").split()[3].split("/")[0]


def redis_fact(host: Host) -> dict[str, Any]:
    """What redis_server recorded on the host (its local fact)."""
    return json.loads(host.file("/etc/ansible/facts.d/redis_server.fact").content_string)


def server_version(host: Host) -> tuple[int, ...]:
    return tuple(int(x) for x in redis_fact(host)["version"].split("."))


def journal(host: Host, unit: str, since: str | None = "-10min", lines: int | None = None, output: str = "cat") -> str:
    """The unit's journal since a time (journalctl --since), or its last lines."""
    cmd = ["journalctl", "--no-pager", "-o", output, "-u", unit, *([f"--since={since}"] if since else [])]
    return host.check_output(shlex.join(cmd + (["-n", str(lines)] if lines else [])))


def write_file(host: Host, path: str, text: str) -> None:
    """Write text to path on the host, through a quoted heredoc (nothing is expanded)."""
    assert "\nREDISOPS_EOF\n" not in text
    tmp, folder = shlex.quote(path + ".tmp"), shlex.quote(path.rsplit("/", 1)[0])
    heredoc = f"cat > {tmp} <<'REDISOPS_EOF'\n{text}\nREDISOPS_EOF\n"
    host.check_output(f"mkdir -p {folder} && {heredoc}mv {tmp} {shlex.quote(path)}")


def install(host: Host, name: str) -> str:
    """Copy a file of this package (host_client.py, fingerprint.lua) to the host, once
    per session; its path there, named by its content's hash."""
    text = (Path(__file__).parent / name).read_text()
    stem, _, ext = name.rpartition(".")
    path = f"{STATE_DIR}/{stem}-{hashlib.sha256(text.encode()).hexdigest()[:12]}.{ext}"
    if (host.backend.get_hostname(), path) not in _installed:
        write_file(host, path, text)
        _installed.add((host.backend.get_hostname(), path))
    return path


def client_command(host: Host, command: str, env: dict[str, str] | None = None, **kwargs: Any) -> str:
    """The shell command that runs host_client.py's `command` with kwargs on the host."""
    # `env`: the command may follow setsid, which takes no assignments.
    prefix = "env " + "".join(f"{k}={shlex.quote(v)} " for k, v in env.items()) if env else ""
    return f"{prefix}python3 {install(host, 'host_client.py')} {command} {shlex.quote(json.dumps(kwargs))}"


def run_client(host: Host, command: str, env: dict[str, str] | None = None, **kwargs: Any) -> Any:
    """Run host_client.py's `command` on the host; its JSON output, parsed."""
    r = host.run(client_command(host, command, env, **kwargs))
    assert r.rc == 0, f"host_client {command} on {host.backend.get_hostname()}: {r.stderr[-2000:]}"
    return json.loads(r.stdout)
