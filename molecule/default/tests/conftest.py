"""Fixtures for the default scenario: one Redis server, one client host."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

SCENARIO_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(SCENARIO_DIR.parent / "shared"))

from redis_testlib import host_fixtures, load_scenario, server_version

SCENARIO = load_scenario(SCENARIO_DIR)
REDIS_VARS = SCENARIO["provisioner"]["inventory"]["group_vars"]["redis_servers"]
USERS = {u["name"]: u for u in REDIS_VARS["redis_server_acl_users"]}


server, client, server_ip, remote = host_fixtures(SCENARIO)


@pytest.fixture(scope="session")
def version(server) -> tuple[int, ...]:
    return server_version(server)


@pytest.fixture(scope="session")
def users() -> dict:
    return USERS


@pytest.fixture(scope="session")
def redis_vars() -> dict:
    return REDIS_VARS
