"""The production example scenario: inventories/production.example's group_vars on
three hosts, with the secrets prepare.yml generated. Fixtures:
redisops_testlib.fixtures (redis, web, worker, base_url, ...) and the secrets."""

import json
import os
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["redisops_testlib.fixtures"]


@pytest.fixture(scope="session")
def secrets() -> dict[str, Any]:
    """The values of the example's vault.yml as prepare.yml made them (plain copy)."""
    return json.loads((Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "secrets.json").read_text())


@pytest.fixture(scope="session")
def auth(secrets: dict[str, Any]) -> dict[str, str]:
    """The headers of a call as the API client "tests"."""
    return {"Authorization": f"Bearer {secrets['vault_api_clients']['tests'][0]}"}
