#!/usr/bin/env python3
"""Check that every role's meta/argument_specs.yml matches its defaults/main.yml.

A spec's `default:` is documentation only (Ansible takes the value from
defaults/main.yml), so the two drift unless something compares them. Also checks
that every default is specced, and that the variables table in each role's
README.md (between the BEGIN/END VARIABLES markers) is the one the specs give.

    scripts/check-argument-specs.py          check (lint)
    scripts/check-argument-specs.py --fix    rewrite the README tables
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- BEGIN VARIABLES -->", "<!-- END VARIABLES -->"


def _cell(value: object) -> str:
    text = value if isinstance(value, str) and value else json.dumps(value)
    return text.strip().replace("|", "\\|").replace("\n", " ")


def variables_table(options: dict) -> str:
    rows = ["| Variable | Type | Default | Description |", "|---|---|---|---|"]
    for name, spec in options.items():
        kind = spec.get("type", "str")
        if spec.get("elements"):
            kind += f" of {spec['elements']}"
        if spec.get("required"):
            default = "**required**"
        elif spec.get("no_log") and spec.get("default") not in (None, "", []):
            default = "(secret)"
        else:
            default = f"`{_cell(spec.get('default'))}`"
        desc = spec.get("description", "")
        desc = " ".join(desc) if isinstance(desc, list) else desc
        if spec.get("choices"):
            desc += " One of: " + ", ".join(f"`{c}`" for c in spec["choices"]) + "."
        rows.append(f"| `{name}` | {kind} | {default} | {_cell(desc)} |")
    return "\n".join(rows)


def main() -> int:
    fix = "--fix" in sys.argv[1:]
    problems: list[str] = []
    for role in sorted((ROOT / "roles").iterdir()):
        if not role.is_dir():
            continue
        spec_file = role / "meta" / "argument_specs.yml"
        if not spec_file.exists():
            problems.append(f"{role.name}: no meta/argument_specs.yml")
            continue
        options = yaml.safe_load(spec_file.read_text())["argument_specs"]["main"]["options"]
        defaults_file = role / "defaults" / "main.yml"
        defaults = yaml.safe_load(defaults_file.read_text()) if defaults_file.exists() else {}
        defaults = defaults or {}
        readme_file = role / "README.md"
        readme = readme_file.read_text() if readme_file.exists() else ""
        if BEGIN in readme and END in readme:
            head, rest = readme.split(BEGIN, 1)
            current, tail = rest.split(END, 1)
            table = variables_table(options)
            if current.strip() != table:
                if fix:
                    readme_file.write_text(f"{head}{BEGIN}\n{table}\n{END}{tail}")
                else:
                    problems.append(f"{role.name}: README variables table is stale (run --fix)")
        else:
            problems.append(f"{role.name}: README.md lacks the {BEGIN} / {END} markers")
        for name, spec in options.items():
            if name in defaults:
                if spec.get("default") != defaults[name]:
                    problems.append(
                        f"{role.name}: {name}: spec default {spec.get('default')!r} "
                        f"!= defaults/main.yml {defaults[name]!r}"
                    )
            elif not spec.get("required"):
                problems.append(f"{role.name}: {name} is optional but has no default")
        for name in defaults:
            if name not in options:
                problems.append(f"{role.name}: default {name} is not in argument_specs")
    for p in problems:
        print(p)
    print(f"argument specs: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
