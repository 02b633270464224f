"""playbooks/site.yml imports the monitoring layer; its plays pick hosts only when the
inventory has a monitoring group (make lint runs this; ansible-playbook --list-hosts,
nothing connects)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = shutil.which("ansible-playbook") or "ansible-playbook"
PLAYS = ("Install the exporters", "Install Prometheus and Alertmanager")


def hosts_per_play(*inventory: str) -> dict[str, list[str]]:
    """Each play of site.yml: the hosts it would run on."""
    out = subprocess.run(  # noqa: S603 - the venv's ansible-playbook, our playbooks, no shell
        [ANSIBLE_PLAYBOOK, *inventory, "playbooks/site.yml", "--list-hosts"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    plays = re.split(r"\n\s*play #\d+ \([^)]*\): ", out)[1:]
    return {p.split("\tTAGS")[0]: re.findall(r"^\s{6}(\S+)$", p, re.MULTILINE) for p in plays}


def test_without_a_monitoring_group_the_monitoring_plays_match_no_host(tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n  children:\n    redis_servers:\n      hosts:\n        r1:\n    app_web:\n      hosts:\n        w1:\n"
    )
    plays = hosts_per_play("-i", str(inventory))
    # The other layers still run on the inventory's hosts.
    assert any("r1" in hosts for hosts in plays.values())
    for play in PLAYS:
        assert plays[play] == []


def test_with_a_monitoring_group_every_host_gets_exporters_and_the_group_prometheus() -> None:
    plays = hosts_per_play("-i", "inventories/local/hosts.yml")
    assert sorted(plays[PLAYS[0]]) == ["redisops-mon1", "redisops-redis1", "redisops-web1", "redisops-worker1"]
    assert plays[PLAYS[1]] == ["redisops-mon1"]
