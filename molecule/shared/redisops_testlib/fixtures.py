"""The fixtures every scenario shares, a plugin each scenario's conftest.py registers
(pytest_plugins = ["redisops_testlib.fixtures"]); hosts are the first of a group."""

from typing import Any

import pytest
from testinfra.host import Host

from redisops_testlib.api import api_url
from redisops_testlib.hosts import get_host, host_address, hosts_in_group, server_version
from redisops_testlib.playbooks import Ops
from redisops_testlib.redis_cli import APP_HOST_TLS, RedisCli
from redisops_testlib.scenario import Scenario, scenario_of


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked converged_state run first: they check the hosts as the converge
    left them, before other tests deploy another version or break things."""
    items.sort(key=lambda item: item.get_closest_marker("converged_state") is None)


@pytest.fixture(scope="session")
def scenario(request: pytest.FixtureRequest) -> Scenario:
    """The scenario of the tests being run."""
    folders = {scenario_of(item.path).dir for item in request.session.items}
    assert len(folders) == 1, f"run the tests of one scenario at a time, not of {sorted(f.name for f in folders)}"
    return scenario_of(folders.pop() / "molecule.yml")


def _first_of(group: str, doc: str) -> Any:
    def first(scenario: Scenario) -> Host:
        return get_host(hosts_in_group(scenario, group)[0])

    first.__doc__ = doc
    return pytest.fixture(scope="session")(first)


server = _first_of("redis_servers", "The Redis host under test.")
redis = _first_of("redis_servers", "The app stack's Redis host.")
web = _first_of("app_web", "The app's web host (gunicorn).")
worker = _first_of("app_workers", "The app's Celery worker host.")
app_host = _first_of("app", "The first app host.")


@pytest.fixture(scope="session")
def new_server(scenario: Scenario) -> Host:
    """The second Redis host (drill: converged empty, a restore target)."""
    return get_host(hosts_in_group(scenario, "redis_servers")[1])


@pytest.fixture(scope="session")
def client(scenario: Scenario) -> Host:
    """The host that calls Redis over the network: the first of redis_clients, else the first
    app host (in the drills, the app host is also the client of the Redis drills)."""
    return get_host((hosts_in_group(scenario, "redis_clients") or hosts_in_group(scenario, "app"))[0])


@pytest.fixture(scope="session")
def server_ip(server: Host) -> str:
    return host_address(server)


@pytest.fixture(scope="session")
def remote(client: Host, server_ip: str, scenario: Scenario) -> RedisCli:
    """redis-cli on the client host, aimed at the server over the network; over TLS with
    the app's files when the scenario's Redis serves TLS only (the client is an app host)."""
    return RedisCli(client, server_ip, scenario.redis_port, APP_HOST_TLS if scenario.redis_tls else {})


@pytest.fixture(scope="session")
def version(server: Host) -> tuple[int, ...]:
    return server_version(server)


@pytest.fixture(scope="session")
def users(scenario: Scenario) -> dict[str, dict[str, Any]]:
    """The ACL users by name, with their passwords."""
    return scenario.acl_users


@pytest.fixture(scope="session")
def ops(scenario: Scenario) -> Ops:
    """The ops playbooks, limited to the Redis host under test by default."""
    return Ops(hosts_in_group(scenario, "redis_servers")[0])


@pytest.fixture(scope="session")
def base_url(scenario: Scenario) -> str:
    """The API as other hosts reach it: gunicorn's socket on the web host."""
    return api_url(hosts_in_group(scenario, "app_web")[0])
