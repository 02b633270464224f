"""Run the bundle's playbooks on the scenario's inventory, as an operator does."""

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redisops_testlib.scenario import REPO


def ansible_playbook(
    playbook: Path,
    extra_vars: dict | None = None,
    tags: str = "",
    verbosity: int = 0,
    limit: str = "",
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run a playbook (e.g. the scenario's converge.yml) on the scenario's inventory,
    with plain output: the tests read its messages."""
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_ROLES_PATH=str(REPO / "roles"))
    env.pop("ANSIBLE_FORCE_COLOR", None)
    env.setdefault("ANSIBLE_CONFIG", str(REPO / "ansible.cfg"))
    cmd = ["ansible-playbook", "-i", env["MOLECULE_INVENTORY_FILE"], str(playbook)]
    cmd += (["--tags", tags] if tags else []) + (["--limit", limit] if limit else []) + (["--check"] if check else [])
    cmd += (["-" + "v" * verbosity] if verbosity else []) + (["-e", json.dumps(extra_vars)] if extra_vars else [])
    # A bound, not a speed claim: a deploy that takes 4 min in CI took over 10 on a
    # machine shared with other scenarios, and the timeout failed the test.
    return subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=1200)


def assert_check_mode_changes_nothing(playbook: Path) -> None:
    """A check-mode run of the converge on converged hosts: no failure and no change
    (the hifis toolkit's `check` step, plus the "no change" Molecule's step does not assert)."""
    proc = ansible_playbook(playbook, check=True)
    recap = re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", proc.stdout, re.M)
    changed, task = [], ""
    for line in proc.stdout.splitlines():
        if line.startswith("TASK ["):
            task = line[6 : line.rfind("]")]
        elif line.startswith("changed: "):
            changed.append(f"{task} {line.split()[1]}")
    print(f"check mode: {recap}")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert recap, proc.stdout[-2000:]
    assert all(c == u == f == "0" for _, c, u, f in recap), f"changed in check mode: {changed}"


def build_wheel(version: str) -> None:
    """Add the app's wheel at `version` to build/wheelhouse (the other wheels are there), for a deploy."""
    env = {**os.environ, "APP_VERSION": version, "WHEELHOUSE_APP_ONLY": "1"}
    subprocess.run([REPO / "django_app/scripts/wheelhouse.sh"], env=env, check=True, capture_output=True, timeout=300)


def run_playbook(playbook: Path, extra_vars: dict | None = None, **kw: Any) -> str:
    """ansible_playbook() that must succeed; its output."""
    proc = ansible_playbook(playbook, extra_vars, **kw)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc.stdout


def restore_api_tokens() -> None:
    """The inventory's API token hashes back on the app hosts after a test rotated a
    client's token (the role's api_tokens entry point: the only file a rotation writes)."""
    run_playbook(REPO / "molecule/shared/playbooks/api-tokens.yml")


@dataclass(frozen=True)
class Ops:
    """playbooks/ops/<name>.yml as the runbooks run them: `-l <host>`, the Redis host
    under test unless limit says otherwise ("all": the playbook's own hosts). stdout
    comes back with runs of whitespace made single spaces: the YAML callback wraps
    long messages at arbitrary places."""

    host: str

    def run(self, name: str, extra_vars: dict | None = None, limit: str | None = None) -> subprocess.CompletedProcess:
        proc = ansible_playbook(REPO / "playbooks" / "ops" / f"{name}.yml", extra_vars, limit=limit or self.host)
        proc.stdout = " ".join(proc.stdout.split())
        return proc

    def ok(self, name: str, extra_vars: dict | None = None, limit: str | None = None) -> str:
        """run() that must succeed; its output."""
        proc = self.run(name, extra_vars, limit)
        assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
        return proc.stdout
