"""Faults injected on the Redis host page the webhook receiver with the
alert's runbook_url within its `for` plus a few scrape intervals, and resolve
after the fix; a quiet period after converge pages nobody."""

import json
from typing import Any

import pytest
from testinfra.host import Host

from redisops_testlib.monitoring import Receiver, http_get, now
from redisops_testlib.polling import wait_for

RUNBOOKS = "https://github.com/redisops/bundle/blob/main/docs/runbooks/"
# Above the alert's own timing (for + 2 scrapes + 1 evaluation + group_wait):
# the shared 2-core machine can be slow to schedule any of the three daemons.
SLACK = 15
FILL = "/var/lib/redis/monitoring-test-fill"
DLQ = "app:stream:events:dlq"


def deadline(timing: dict[str, Any], alert: str) -> float:
    return timing["for"][alert] + 2 * timing["scrape"] + timing["evaluation"] + timing["group_wait"] + SLACK


def prometheus_api(prom: Host, prom_ip: str, path: str) -> Any:

    status, _, body = http_get(prom, f"http://{prom_ip}:9090/api/v1/{path}").partition(" ")
    assert status == "200", body
    return json.loads(body)["data"]


def fires_then_resolves(
    receiver: Receiver, timing: dict[str, Any], alert: str, start: float, fix: Any
) -> dict[str, Any]:
    """Wait for `alert` firing (within its deadline), apply `fix`, wait for it resolved;
    the firing alert. `fix` runs even when the alert never comes."""
    try:
        arrived, fired = wait_for(lambda: receiver.first(alert, "firing", start), timeout=deadline(timing, alert))
    finally:
        fixed = now()
        fix()
    latency = arrived - start
    assert latency <= deadline(timing, alert), f"{alert} took {latency:.1f} s"
    wait_for(lambda: receiver.first(alert, "resolved", fixed), timeout=60)
    return fired


@pytest.mark.converged_state
def test_a_quiet_period_after_converge_pages_nobody(prom: Host, prom_ip: str, receiver: Receiver, timing: dict) -> None:
    # Every target scraped, then a quiet window three times the longest
    # shortened `for`: nothing pending, nothing firing, nothing sent.
    wait_for(
        lambda: all(t["health"] == "up" for t in prometheus_api(prom, prom_ip, "targets")["activeTargets"]),
        timeout=90,
    )
    targets = prometheus_api(prom, prom_ip, "targets")["activeTargets"]
    assert {t["labels"]["job"] for t in targets} == {"node", "redis"}
    assert len(targets) == 4  # a node exporter on each of 3 hosts, a Redis exporter
    start = now()
    window = 3 * max(timing["for"].values())
    wait_for(lambda: now() - start >= window, timeout=window + 5, interval=2)
    assert prometheus_api(prom, prom_ip, "alerts")["alerts"] == []
    assert receiver.any_firing(0) == []


def test_redis_down_pages_with_its_runbook_and_resolves_after_restart(
    server: Host, receiver: Receiver, timing: dict
) -> None:
    start = now()
    server.check_output("systemctl stop redis-server")
    fired = fires_then_resolves(
        receiver, timing, "RedisDown", start, lambda: server.check_output("systemctl start redis-server")
    )
    assert fired["annotations"]["runbook_url"] == f"{RUNBOOKS}redis-down.md"
    assert fired["annotations"]["summary"].startswith("Redis on redis-mon does not answer")
    assert fired["labels"]["severity"] == "page"
    assert server.check_output("redis-admin PING") == "PONG"


def test_a_filling_disk_under_the_redis_data_dir_pages(server: Host, receiver: Receiver, timing: dict) -> None:
    size, avail = map(int, server.check_output("df --output=size,avail -B1 /var/lib/redis | tail -1").split())
    fill = avail - size // 20  # leaves 5 % free
    start = now()
    server.check_output(f"fallocate -l {fill} {FILL}")
    fired = fires_then_resolves(
        receiver,
        timing,
        "RedisDiskFilling",
        start,
        lambda: server.check_output("rm -f /var/lib/redis/monitoring-test-fill"),
    )
    assert fired["labels"]["mountpoint"] == "/var/lib/redis"
    assert fired["annotations"]["runbook_url"] == f"{RUNBOOKS}redis-disk-aof.md"
    assert "Redis stops writing when it is full" in fired["annotations"]["summary"]


def test_a_dead_letter_pages_and_resolves_once_emptied(server: Host, receiver: Receiver, timing: dict) -> None:
    start = now()
    server.check_output(f"redis-admin XADD {DLQ} '*' reason monitoring-test")
    fired = fires_then_resolves(
        receiver,
        timing,
        "DeadLetterNotEmpty",
        start,
        lambda: server.check_output("redis-admin DEL app:stream:events:dlq"),
    )
    assert fired["labels"]["key"] == "app:stream:events:dlq"
    assert fired["annotations"]["runbook_url"] == f"{RUNBOOKS}stream-lag-dlq.md"
    assert fired["annotations"]["summary"].startswith("Dead-letter stream app:stream:events:dlq holds 1 entries")
