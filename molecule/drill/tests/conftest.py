"""Fixtures for the drill scenario: one Redis server, one client host."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

SCENARIO_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(SCENARIO_DIR.parent / "shared"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from redis_testlib import (  # noqa: E402
    RedisCli,
    get_host,
    host_address,
    hosts_in_group,
    load_scenario,
)

SCENARIO = load_scenario(SCENARIO_DIR)
REDIS_VARS = SCENARIO["provisioner"]["inventory"]["group_vars"]["redis_servers"]
USERS = {u["name"]: u for u in REDIS_VARS["redis_server_acl_users"]}


@pytest.fixture(scope="session")
def server():
    return get_host(hosts_in_group(SCENARIO, "redis_servers")[0])


@pytest.fixture(scope="session")
def client():
    return get_host(hosts_in_group(SCENARIO, "redis_clients")[0])


@pytest.fixture(scope="session")
def server_ip(server) -> str:
    return host_address(server)


@pytest.fixture(scope="session")
def remote(client, server_ip) -> RedisCli:
    """redis-cli on the client host, aimed at the server over the network."""
    return RedisCli(client, server_ip, REDIS_VARS.get("redis_server_port", 6379))


@pytest.fixture(scope="session")
def users() -> dict:
    return USERS
