"""Fixtures for the TLS scenario: a TLS-only Redis server and a client host."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

SCENARIO_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(SCENARIO_DIR.parent / "shared"))

from redis_testlib import get_host, host_address, hosts_in_group, load_scenario  # noqa: E402

SCENARIO = load_scenario(SCENARIO_DIR)
REDIS_VARS = SCENARIO["provisioner"]["inventory"]["group_vars"]["redis_servers"]
APP = REDIS_VARS["redis_server_acl_users"][0]


@pytest.fixture(scope="session")
def server():
    return get_host(hosts_in_group(SCENARIO, "redis_servers")[0])


@pytest.fixture(scope="session")
def client():
    return get_host(hosts_in_group(SCENARIO, "redis_clients")[0])


@pytest.fixture(scope="session")
def server_ip(server) -> str:
    return host_address(server)
