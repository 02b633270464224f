"""The app package stands on its own: it never imports its project (config)."""

from __future__ import annotations

import ast
from pathlib import Path

APP_PACKAGE = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_app_code_does_not_import_the_project() -> None:
    """redisops uses the current Celery app and django.conf.settings; only the
    tests of the project's settings and Celery app import config."""
    sources = [
        p
        for p in APP_PACKAGE.rglob("*.py")
        if "tests" not in p.relative_to(APP_PACKAGE).parts
    ]
    assert len(sources) > 20  # the scan sees the package
    offenders = {
        str(p.relative_to(APP_PACKAGE)): sorted(
            m for m in imported_modules(p) if m == "config" or m.startswith("config.")
        )
        for p in sources
    }
    assert {k: v for k, v in offenders.items() if v} == {}
