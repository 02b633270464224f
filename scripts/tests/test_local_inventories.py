"""The two local demos' inventories (make demo: inventories/local/hosts.yml;
make demo-ha: ha.yml beside it) share group_vars/ and the secrets folder, and
never each other's hosts or network. Asks Ansible itself (--list-hosts and the
debug action run on the controller: no host needed; make lint runs this)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible_ask import ask
from test_site_monitoring import hosts_per_play

ROOT = Path(__file__).resolve().parents[2]
DEMOS = {"inventories/local/hosts.yml": "redisops-redis1", "inventories/local/ha.yml": "redisops-ha1"}


@pytest.mark.parametrize("inventory", DEMOS)
def test_each_demo_keeps_its_secrets_in_the_one_local_folder(inventory: str) -> None:
    # The password lookups write to inventory_dir/.secrets: the same folder for
    # every host of both demos, whichever file names it.
    dirs = ask(inventory, "all", "inventory_dir")
    assert len(dirs) >= 4
    assert set(dirs.values()) == {str(ROOT / "inventories/local")}


def test_the_demos_share_no_host_and_no_network() -> None:
    # make demo-down removes each file's hosts and network: one demo's never
    # touches the other's.
    single, ha = (ask(inventory, "all", "local_network") for inventory in DEMOS)
    assert not set(single) & set(ha)
    assert set(single.values()) == {"redisops-local"}
    assert set(ha.values()) == {"redisops-local-ha"}


def test_the_ha_demo_runs_redis_and_sentinel_on_the_same_three_hosts() -> None:
    plays = hosts_per_play("-i", "inventories/local/ha.yml")
    nodes = ["redisops-ha1", "redisops-ha2", "redisops-ha3"]
    assert sorted(plays["Install and harden Redis"]) == nodes
    assert sorted(plays["Install and harden Redis Sentinel"]) == nodes
    # make demo's single Redis has no Sentinel.
    assert hosts_per_play("-i", "inventories/local/hosts.yml")["Install and harden Redis Sentinel"] == []
