"""The benchmarks' inventories give the roles what the scripts rely on.

Their vars go through the wiring (playbooks/group_vars/all/wiring.yml), which
outranks an inventory file's group vars: a user set in the wrong place is
silently dropped, and the benchmark then fails only after a converge. This
asks Ansible itself (the debug action runs on the controller: no host needed).
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE = shutil.which("ansible") or "ansible"


def redis_users(inventory: str, host: str) -> list[dict[str, object]]:
    out = subprocess.run(  # noqa: S603 - the venv's ansible, our inventories, no shell
        [
            ANSIBLE,
            host,
            "-i",
            str(ROOT / inventory),
            "--playbook-dir",
            str(ROOT / "playbooks"),
            "-m",
            "ansible.builtin.debug",
            "-a",
            "msg={{ redis_server_acl_users | to_json }}",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={
            **os.environ,
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",  # ad-hoc runs ignore the callback otherwise
            "ANSIBLE_STDOUT_CALLBACK": "json",
        },
    ).stdout
    result = json.loads(out)["plays"][0]["tasks"][0]["hosts"][host]
    msg = result["msg"]
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
