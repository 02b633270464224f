"""A scenario as data: its molecule.yml is the one source of hosts, groups, users and
passwords; the tests read it instead of repeating them."""

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]


def load_scenario(scenario_dir: Path) -> dict[str, Any]:
    """molecule.yml, with provisioner.inventory.group_vars filled from the linked
    group_vars folder when the scenario links one."""
    scenario = yaml.safe_load((scenario_dir / "molecule.yml").read_text())
    inventory = scenario["provisioner"].setdefault("inventory", {})
    linked = inventory.get("links", {}).get("group_vars")
    if linked:
        folder = (scenario_dir / linked).resolve()
        inventory["group_vars"] = {f.stem: yaml.safe_load(f.read_text()) for f in sorted(folder.glob("*.yml"))}
    return scenario


@dataclass(frozen=True)
class Scenario:
    """A scenario's folder and its molecule.yml (load_scenario)."""

    dir: Path
    config: dict[str, Any]

    @property
    def converge(self) -> Path:
        """The scenario's converge playbook (another scenario's, if molecule.yml names it)."""
        named = self.config["provisioner"].get("playbooks", {}).get("converge", "converge.yml")
        return (self.dir / named).resolve()

    def group_vars(self, group: str) -> dict[str, Any]:
        return self.config["provisioner"]["inventory"].get("group_vars", {}).get(group) or {}

    @property
    def redis_vars(self) -> dict[str, Any]:
        return self.group_vars("redis_servers")

    @property
    def redis_tls(self) -> bool:
        """Whether Redis serves TLS only and the app talks to it over TLS (redisops_redis_tls)."""
        return bool(self.group_vars("all").get("redisops_redis_tls"))

    @property
    def redis_port(self) -> int:
        """The port Redis serves other hosts on: the TLS port with redisops_redis_tls (as
        playbooks/group_vars/all/wiring.yml defaults it), else the plain one."""
        if self.redis_tls:
            return int(self.group_vars("all").get("redisops_redis_tls_port", 6380))
        return int(self.redis_vars.get("redis_server_port", 6379))

    @property
    def passwords(self) -> dict[str, str]:
        """The app's Redis users' passwords (the inventory's vault)."""
        return self.group_vars("all")["redisops_redis_passwords"]

    @property
    def app_env(self) -> dict[str, str]:
        return self.group_vars("app")["django_app_env"]

    @property
    def extra_acl_users(self) -> list[dict[str, Any]]:
        """The users the inventory adds to the app's (redisops_redis_extra_acl_users)."""
        return self.redis_vars.get("redisops_redis_extra_acl_users", [])

    @property
    def acl_users(self) -> dict[str, dict[str, Any]]:
        """The ACL users redis_server gets, by name, with their passwords: the scenario's
        own redis_server_acl_users, else the app's users with the inventory's passwords
        and the inventory's extra users (as playbooks/group_vars/all/wiring.yml derives them)."""
        if "redis_server_acl_users" in self.redis_vars:
            return {u["name"]: u for u in self.redis_vars["redis_server_acl_users"]}
        app_acl = yaml.safe_load((REPO / "playbooks/group_vars/all/app_redis_acl.yml").read_text())["redisops_app_acl"]
        app = {u["name"]: {**u, "password": self.passwords[u["name"]]} for u in app_acl["users"]}
        return app | {u["name"]: u for u in self.extra_acl_users}


@functools.cache
def scenario_of(path: str | Path) -> Scenario:
    """The scenario a file belongs to: the nearest folder above it with a molecule.yml."""
    folder = next(d for d in Path(path).resolve().parents if (d / "molecule.yml").exists())
    return Scenario(folder, load_scenario(folder))
