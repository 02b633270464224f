"""scripts/check-alerts.py on a small repository made in tmp_path (make lint runs this)."""

from __future__ import annotations

from pathlib import Path

import pytest
from script_loader import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "check-alerts.py"
BASE = "https://example.org/ops/blob/main/docs/runbooks/"

RULES = f"""
groups:
  - name: g
    rules:
      - record: not_an_alert
        expr: up
      - alert: ThingDown
        expr: up == 0
        annotations:
          summary: The thing is down
          runbook_url: {BASE}thing.md
"""

TESTS = """
tests:
  - alert_rule_test:
      - eval_time: 5m
        alertname: ThingDown
        exp_alerts:
          - exp_labels: {severity: page}
      - eval_time: 9m
        alertname: ThingDown
        exp_alerts: []
"""

check_alerts = load_script(SCRIPT, "check_alerts")


def repo(tmp_path: Path, rules: str = RULES, tests: str = TESTS) -> Path:
    (tmp_path / "galaxy.yml").write_text("repository: https://example.org/ops\n")
    (tmp_path / "roles/monitoring/files/rules").mkdir(parents=True)
    (tmp_path / "roles/monitoring/files/rules/x.rules.yml").write_text(rules)
    (tmp_path / "roles/monitoring/tests/rules").mkdir(parents=True)
    (tmp_path / "roles/monitoring/tests/rules/x.test.yml").write_text(tests)
    (tmp_path / "docs/runbooks").mkdir(parents=True)
    (tmp_path / "docs/runbooks/thing.md").write_text("# Thing down\nAlerts: `ThingDown`\n")
    (tmp_path / "docs/runbooks/README.md").write_text(
        "| Alert | Runbook |\n|---|---|\n| `ThingDown` | [thing.md](thing.md) |\n"
    )
    return tmp_path


def test_an_alert_with_its_runbook_readme_row_and_both_cases_passes(tmp_path: Path) -> None:
    assert check_alerts.check(repo(tmp_path)) == (1, [])


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("", "no runbook_url"),
        ("https://elsewhere.org/thing.md", "is not"),
        (f"{BASE}gone.md", "gone.md does not exist"),
    ],
)
def test_an_alert_without_a_runbook_that_exists_fails(tmp_path: Path, url: str, problem: str) -> None:
    rules = RULES.replace(f"{BASE}thing.md", url)
    count, problems = check_alerts.check(repo(tmp_path, rules=rules))
    assert count == 1
    assert len(problems) == 1
    assert problem in problems[0]


def test_an_alert_without_a_summary_fails(tmp_path: Path) -> None:
    _, problems = check_alerts.check(repo(tmp_path, rules=RULES.replace("The thing is down", "''")))
    assert problems == ["roles/monitoring/files/rules/x.rules.yml: ThingDown: no summary"]


def test_a_runbook_that_does_not_name_its_alert_fails(tmp_path: Path) -> None:
    root = repo(tmp_path)
    (root / "docs/runbooks/thing.md").write_text("# Thing down\n")
    _, problems = check_alerts.check(root)
    assert problems == [
        "roles/monitoring/files/rules/x.rules.yml: ThingDown: docs/runbooks/thing.md does not name the alert"
    ]


def test_an_alert_missing_from_the_runbook_index_fails(tmp_path: Path) -> None:
    root = repo(tmp_path)
    (root / "docs/runbooks/README.md").write_text("| `ThingDown` | elsewhere |\n| x | [thing.md](thing.md) |\n")
    _, problems = check_alerts.check(root)
    assert problems == [
        "roles/monitoring/files/rules/x.rules.yml: ThingDown: no row of docs/runbooks/README.md names it with thing.md"
    ]


QUIET_ONLY = """
tests:
  - alert_rule_test:
      - eval_time: 9m
        alertname: ThingDown
        exp_alerts: []
"""
FIRING_ONLY = """
tests:
  - alert_rule_test:
      - eval_time: 5m
        alertname: ThingDown
        exp_alerts:
          - exp_labels: {severity: page}
"""


@pytest.mark.parametrize(("tests", "missing"), [(QUIET_ONLY, "firing"), (FIRING_ONLY, "quiet")])
def test_an_alert_without_a_firing_or_a_quiet_test_fails(tmp_path: Path, tests: str, missing: str) -> None:
    _, problems = check_alerts.check(repo(tmp_path, tests=tests))
    assert problems == [f"roles/monitoring/files/rules/x.rules.yml: ThingDown: no promtool test expects it {missing}"]
