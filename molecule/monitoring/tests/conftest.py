"""The monitoring scenario: a Redis host with its exporters (server), the app
host (app: web, beat, workers, consumers), the monitoring host with Prometheus, Alertmanager and the recording webhook
receiver (prom), an outsider. Fixtures: redisops_testlib.fixtures and below."""

from typing import Any

import pytest
from testinfra.host import Host

from redisops_testlib.hosts import get_host, host_address, hosts_in_group
from redisops_testlib.monitoring import Receiver, seconds
from redisops_testlib.scenario import Scenario

pytest_plugins = ["redisops_testlib.fixtures"]


@pytest.fixture(scope="session")
def prom(scenario: Scenario) -> Host:
    """The monitoring host."""
    return get_host(hosts_in_group(scenario, "monitoring")[0])


@pytest.fixture(scope="session")
def app(scenario: Scenario) -> Host:
    """The app host: web, beat, workers and consumers."""
    return get_host(hosts_in_group(scenario, "app_workers")[0])


@pytest.fixture(scope="session")
def outsider(scenario: Scenario) -> Host:
    """A host that is neither monitored by Redis nor the monitoring host."""
    return get_host(hosts_in_group(scenario, "outsiders")[0])


@pytest.fixture(scope="session")
def prom_ip(prom: Host) -> str:
    return host_address(prom)


@pytest.fixture(scope="session")
def receiver(prom: Host) -> Receiver:
    return Receiver(prom)


@pytest.fixture(scope="session")
def timing(scenario: Scenario) -> dict[str, Any]:
    """The scenario's scrape, evaluation and group_wait, and per alert its `for`."""
    mon = scenario.group_vars("monitoring")
    return {
        "scrape": seconds(mon["monitoring_scrape_interval"]),
        "evaluation": seconds(mon["monitoring_evaluation_interval"]),
        "group_wait": seconds(mon["monitoring_alertmanager_group_wait"]),
        "for": {name: seconds(value) for name, value in mon["monitoring_alert_for"].items()},
    }
