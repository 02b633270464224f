#!/usr/bin/env python3
"""Check the unit templates: every one is linked from systemd/, every link
there resolves, and the app's units render from their documented interface
only (app_unit_app, app_unit_params; systemd/README.md).

    scripts/check-units.py
"""

from __future__ import annotations

import sys
from pathlib import Path

from jinja2 import Environment, meta

ROOT = Path(__file__).resolve().parents[1]
SYSTEMD = ROOT / "systemd"
# Roles whose units the app_unit role renders.
APP_UNIT_ROLES = {"app_unit", "gunicorn", "celery_worker", "celery_beat", "app_consumers"}
INTERFACE = {"app_unit_app", "app_unit_params", "ansible_managed"}


def main() -> int:
    problems: list[str] = []
    templates = sorted(ROOT.glob("roles/*/templates/etc/systemd/system/**/*.j2"))
    links = {p.resolve(): p for p in SYSTEMD.rglob("*.j2")}
    for link in SYSTEMD.rglob("*"):
        if link.is_symlink() and not link.exists():
            problems.append(f"{link.relative_to(ROOT)}: broken link")
    env = Environment(autoescape=False)  # noqa: S701 - parses systemd units, renders nothing
    # Ansible's filters, by name only: the check parses, it never renders.
    env.filters.update(dict.fromkeys(["comment", "basename", "to_json", "quote"], str))
    for template in templates:
        rel = template.relative_to(ROOT)
        if template.resolve() not in links:
            problems.append(f"{rel}: no link in systemd/")
        role = rel.parts[1]
        if role in APP_UNIT_ROLES:
            names = meta.find_undeclared_variables(env.parse(template.read_text()))
            extra = sorted(names - INTERFACE)
            if extra:
                problems.append(f"{rel}: reads {', '.join(extra)}; an app unit reads only {sorted(INTERFACE)}")
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"units: {len(templates)} templates checked, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
