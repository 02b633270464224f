"""Fixtures for the TLS scenario: a TLS-only Redis server and a client host."""

from __future__ import annotations

import sys
from pathlib import Path

SCENARIO_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(SCENARIO_DIR.parent / "shared"))

from redis_testlib import host_fixtures, load_scenario

SCENARIO = load_scenario(SCENARIO_DIR)
REDIS_VARS = SCENARIO["provisioner"]["inventory"]["group_vars"]["redis_servers"]
APP = REDIS_VARS["redis_server_acl_users"][0]


server, client, server_ip, _ = host_fixtures(SCENARIO)
