"""The benchmarks' inventories give the roles what the scripts rely on.

Their vars go through the wiring (playbooks/group_vars/all/wiring.yml), which
outranks an inventory file's group vars: a user set in the wrong place is
silently dropped, and the benchmark then fails only after a converge. This
asks Ansible itself (the debug action runs on the controller: no host needed).
"""

import json

import pytest
from ansible_ask import ask


def redis_users(inventory: str, host: str) -> list[dict[str, object]]:
    msg = ask(inventory, host, "redis_server_acl_users | to_json", wiring=True)[host]
    return json.loads(msg) if isinstance(msg, str) else msg


@pytest.mark.parametrize(
    ("inventory", "host", "extra"),
    [
        ("bench/redis/inventory.yml", "redisops-bench-redis", {"bench"}),
        ("bench/api/inventory.yml", "redisops-bench-api-redis", set()),
    ],
)
def test_bench_inventory_gives_redis_every_user_with_a_password(inventory: str, host: str, extra: set[str]) -> None:
    users = redis_users(inventory, host)
    names = {str(u["name"]) for u in users}
    assert {"app_broker", "app_data", "app_monitor"} | extra <= names
    assert all(u.get("password") for u in users), users
