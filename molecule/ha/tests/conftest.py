"""The ha scenario: three nodes with Redis and Sentinel, one client host. Fixtures:
redisops_testlib.fixtures (scenario, ...) and `ha` (redisops_testlib.ha.Ha)."""

import pytest

from redisops_testlib.ha import Ha

pytest_plugins = ["redisops_testlib.fixtures"]


@pytest.fixture(scope="session")
def ha(scenario) -> Ha:
    return Ha.load(scenario)
