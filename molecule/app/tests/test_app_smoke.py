"""`manage.py smoke` through the deployed services, run as the operator does."""

import ast

from redisops_testlib.playbooks import run_playbook
from redisops_testlib.scenario import REPO

SMOKE = REPO / "django_app" / "redisops" / "management" / "commands" / "smoke.py"
# The command's own list of checks (this venv has no Django to import it).
CHECKS = next(
    ast.literal_eval(node.value)
    for node in ast.parse(SMOKE.read_text()).body
    if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "CHECKS"
)


def test_smoke_playbook_passes_every_check():
    out = run_playbook(REPO / "playbooks" / "smoke.yml")
    assert "smoke: all checks passed" in out, out[-3000:]
    missing = [check for check in CHECKS if f"ok   {check}:" not in out]
    assert missing == [], out[-3000:]
