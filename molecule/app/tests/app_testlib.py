"""Helpers for the full-stack app scenario: HTTP and Redis from the test hosts.

The scenario's molecule.yml is the one source of hosts, groups and passwords.
Hosts have no curl: requests go through the host's python3 (urllib).
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import testinfra
import yaml

SCENARIO_DIR = Path(__file__).resolve().parents[1]
REPO = SCENARIO_DIR.parents[1]
import sys  # noqa: E402

sys.path.insert(0, str(SCENARIO_DIR.parent / "shared"))
from redis_testlib import load_scenario  # noqa: E402

SCENARIO: dict[str, Any] = load_scenario(SCENARIO_DIR)
GROUP_VARS: dict[str, Any] = SCENARIO["provisioner"]["inventory"]["group_vars"]
PASSWORDS: dict[str, str] = GROUP_VARS["all"]["redisops_redis_passwords"]
APP_ENV: dict[str, str] = GROUP_VARS["app"]["django_app_env"]
ACL_USERS = yaml.safe_load((REPO / "playbooks/group_vars/all/app_redis_acl.yml").read_text())["redisops_app_acl"]["users"]

# One way to call the deployed API for every scenario (molecule/shared, on
# sys.path through conftest.py).
from app_http import HTTPS, http  # noqa: F401 - re-exported for the tests


def hosts_in_group(group: str) -> list[str]:
    return [p["name"] for p in SCENARIO["platforms"] if group in p.get("groups", [])]


def get_host(name: str):
    return testinfra.get_host(f"podman://{name}")


def wait_for(check: Callable[[], Any], timeout: float = 30, interval: float = 0.3) -> Any:
    """Poll until check() returns something truthy; fail with its last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except AssertionError as exc:  # a probe may assert while things start
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")


def redis_admin(redis_host, *args: str) -> str:
    """redis-cli as the admin user on the Redis host (the role's redis-admin)."""
    r = redis_host.run("redis-admin " + " ".join(shlex.quote(a) for a in args))
    assert r.rc == 0, r.stderr
    return r.stdout.strip()


def journal(host, unit: str, since: str = "-10min") -> str:
    return host.check_output(f"journalctl --no-pager -o cat -u {shlex.quote(unit)} --since={since}")
