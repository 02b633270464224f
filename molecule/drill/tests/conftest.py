"""Fixtures for the drill scenario: a Redis host under test (server), a second
Redis host converged empty (new_server), and the app host (app_host), which is
also the client host of the Redis drills (client, remote)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

SCENARIO_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(SCENARIO_DIR.parent / "shared"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from app_http import api_url
from redis_testlib import REPO, get_host, host_fixtures, hosts_in_group, load_scenario

SCENARIO = load_scenario(SCENARIO_DIR)
GROUP_VARS = SCENARIO["provisioner"]["inventory"]["group_vars"]
PORT = GROUP_VARS["redis_servers"].get("redis_server_port", 6379)
PASSWORDS: dict[str, str] = GROUP_VARS["all"]["redisops_redis_passwords"]
# The app's ACL users as redis_server gets them (name -> password), as
# playbooks/group_vars/all/wiring.yml derives them.
USERS = {
    u["name"]: {"password": PASSWORDS[u["name"]]}
    for u in yaml.safe_load((REPO / "playbooks/group_vars/all/app_redis_acl.yml").read_text())["redisops_app_acl"][
        "users"
    ]
}
SERVER, NEW_SERVER = hosts_in_group(SCENARIO, "redis_servers")
APP_HOST = hosts_in_group(SCENARIO, "app")[0]


# The app host is also the client host of the Redis drills.
server, client, server_ip, remote = host_fixtures(SCENARIO, client_group="app")


@pytest.fixture(scope="session")
def new_server():
    return get_host(NEW_SERVER)


@pytest.fixture(scope="session")
def app_host():
    return get_host(APP_HOST)


@pytest.fixture(scope="session")
def users() -> dict:
    return USERS


@pytest.fixture(scope="session")
def base_url() -> str:
    """The API as other hosts reach it: gunicorn's socket on the app host."""
    return api_url(APP_HOST)
