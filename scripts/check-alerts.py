#!/usr/bin/env python3
"""Check that every alert pages the right runbook (make lint).

For every alerting rule in roles/monitoring/files/rules/*.rules.yml:
- annotations.summary is set (what is broken, for whom);
- annotations.runbook_url is <repository>/blob/main/docs/runbooks/<page>.md,
  <repository> from galaxy.yml, and that page exists;
- the runbook names the alert, and a row of docs/runbooks/README.md names
  the alert and links its runbook side by side;
- roles/monitoring/tests/rules/*.test.yml evaluates it at least once firing
  (exp_alerts not empty) and once quiet (exp_alerts empty); promtool runs them.

Fails, listing every problem. Prints how many alerts it checked.

    scripts/check-alerts.py [--root DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RULES = "roles/monitoring/files/rules/*.rules.yml"
TESTS = "roles/monitoring/tests/rules/*.test.yml"
RUNBOOKS = "docs/runbooks"


def alerts(root: Path) -> list[tuple[Path, dict]]:
    found = []
    for path in sorted(root.glob(RULES)):
        doc = yaml.safe_load(path.read_text()) or {}
        for group in doc.get("groups", []):
            found += [(path, rule) for rule in group.get("rules", []) if "alert" in rule]
    return found


def evaluations(root: Path) -> dict[str, set[bool]]:
    """alertname -> {True if some eval expects it firing, False if quiet}."""
    seen: dict[str, set[bool]] = {}
    for path in sorted(root.glob(TESTS)):
        doc = yaml.safe_load(path.read_text()) or {}
        for test in doc.get("tests", []):
            for case in test.get("alert_rule_test", []):
                seen.setdefault(case["alertname"], set()).add(bool(case.get("exp_alerts")))
    return seen


def check(root: Path) -> tuple[int, list[str]]:
    repository = yaml.safe_load((root / "galaxy.yml").read_text())["repository"]
    base = f"{repository.rstrip('/')}/blob/main/{RUNBOOKS}/"
    readme = (root / RUNBOOKS / "README.md").read_text().splitlines()
    tested = evaluations(root)
    problems: list[str] = []
    found = alerts(root)
    for path, rule in found:
        name = rule["alert"]
        where = f"{path.relative_to(root)}: {name}"
        annotations = rule.get("annotations") or {}
        if not str(annotations.get("summary") or "").strip():
            problems.append(f"{where}: no summary")
        url = str(annotations.get("runbook_url") or "")
        page = url.removeprefix(base)
        if not url:
            problems.append(f"{where}: no runbook_url")
        elif page == url or "/" in page or not page.endswith(".md"):
            problems.append(f"{where}: runbook_url {url!r} is not {base}<page>.md")
        elif not (root / RUNBOOKS / page).is_file():
            problems.append(f"{where}: runbook {RUNBOOKS}/{page} does not exist")
        else:
            if name not in (root / RUNBOOKS / page).read_text():
                problems.append(f"{where}: {RUNBOOKS}/{page} does not name the alert")
            if not any(f"`{name}`" in line and f"({page}" in line for line in readme):
                problems.append(f"{where}: no row of {RUNBOOKS}/README.md names it with {page}")
        cases = tested.get(name, set())
        if True not in cases:
            problems.append(f"{where}: no promtool test expects it firing")
        if False not in cases:
            problems.append(f"{where}: no promtool test expects it quiet")
    return len(found), problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT)
    args = parser.parse_args()
    count, problems = check(args.root)
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"alerts: {count} checked, {len(problems)} problem(s)")
    return 1 if problems or not count else 0


if __name__ == "__main__":
    sys.exit(main())
