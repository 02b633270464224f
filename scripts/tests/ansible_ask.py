"""Ask Ansible itself what a variable templates to on a host, without the host:
an ad-hoc run of the debug action (it runs on the controller)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE = shutil.which("ansible") or "ansible"


def ask(inventory: str, hosts: str, expression: str, *, wiring: bool = False) -> dict[str, object]:
    """{host: the expression's value} as Ansible templates it for each host of the
    pattern; with ``wiring`` the playbooks' group_vars (wiring.yml) apply as in a
    playbook run."""
    out = subprocess.run(  # noqa: S603 - the venv's ansible, our inventories, no shell
        [
            ANSIBLE,
            hosts,
            "-i",
            inventory,
            *(["--playbook-dir", str(ROOT / "playbooks")] if wiring else []),
            "-m",
            "ansible.builtin.debug",
            "-a",
            f"msg={{{{ {expression} }}}}",
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
    return {h: r["msg"] for h, r in json.loads(out)["plays"][0]["tasks"][0]["hosts"].items()}
