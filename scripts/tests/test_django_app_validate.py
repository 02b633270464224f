"""The django_app role refuses settings its environment file cannot hold (validate.yml):
app.env holds each value in single quotes and root sources it, so a quote, a backslash
or a line break in DATABASE_URL or ALLOWED_HOSTS would break out of the quoting. The
role runs on this controller in check mode: the refusal comes before any host work,
and the control run shows the same values without the bad character pass that check
(it stops at the next one, the missing wheel)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = shutil.which("ansible-playbook") or "ansible-playbook"
QUOTING = "no value may hold a quote, backslash or line break"
WHEEL_MISSING = "is missing on the controller"

PLAYBOOK = """
- name: Apply the django_app role to this controller in check mode
  hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - role: django_app
"""


def run_role(tmp_path: Path, **overrides: object) -> subprocess.CompletedProcess[str]:
    extra = {
        # The modules run on this controller with the interpreter running the test.
        "ansible_python_interpreter": sys.executable,
        "django_app_version": "0.0.0",
        "django_app_wheelhouse": str(tmp_path / "wheelhouse"),
        "django_app_secret_key": "k" * 50,
        "django_app_redis_users": [{"name": "app-web", "env": "REDIS_URL"}],
        "django_app_redis_processes": {"web": ["app-web"], "manage": ["app-web"]},
        "django_app_redis_passwords": {"app-web": "p" * 24},
        "django_app_processes": ["web"],
        **overrides,
    }
    (tmp_path / "wheelhouse").mkdir(exist_ok=True)
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    (tmp_path / "vars.json").write_text(json.dumps(extra))
    return subprocess.run(  # noqa: S603 - the venv's ansible-playbook, a playbook of this test, no shell
        [
            ANSIBLE_PLAYBOOK,
            "-i",
            "localhost,",
            "--check",
            str(tmp_path / "play.yml"),
            "-e",
            f"@{tmp_path / 'vars.json'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={
            "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "PATH": os.environ["PATH"],
        },
        timeout=300,
    )


@pytest.mark.parametrize(
    ("setting", "bad", "good"),
    [
        ("django_app_database_url", "sqlite:////tmp/x'; touch /tmp/owned; '.db", "sqlite:////tmp/x.db"),
        ("django_app_database_url", "postgres://u:p\\@db/app", "postgres://u:p@db/app"),
        ("django_app_allowed_hosts", ["app.example.org", "evil\nROOT=1"], ["app.example.org", "evil"]),
    ],
    ids=["database url with a quote", "database url with a backslash", "allowed host with a line break"],
)
def test_a_value_that_would_break_the_env_file_quoting_is_refused_by_name(
    tmp_path: Path, setting: str, bad: object, good: object
) -> None:
    refused = run_role(tmp_path, **{setting: bad})
    assert refused.returncode != 0
    assert f"{setting}: {QUOTING}" in refused.stdout, refused.stdout[-3000:]
    # The message names the setting, never its value.
    for shown in ("owned", "u:p", "ROOT=1"):
        assert shown not in refused.stdout

    control = run_role(tmp_path, **{setting: good})
    assert QUOTING not in control.stdout, control.stdout[-3000:]
    assert WHEEL_MISSING in control.stdout, control.stdout[-3000:]
