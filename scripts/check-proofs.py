#!/usr/bin/env python3
"""Check that every test the docs name as a claim's proof exists (make lint).

A claim in README.md, roles/*/README.md, django_app/README.md,
inventories/*/README.md or docs/**/*.md names the test that proves it as
`path/to/test_file.py::test_name`, backticked (found without backticks too);
a parametrized id `::test_name[case]` names test_name, `::TestClass::test_name`
a method. A bare `::test_other` after such a reference names another test of
the same file. The path is taken from the repository root, else from the
document's folder.

Fails, listing file:line, for every reference whose file does not exist, does
not parse, or has no `def`/`async def` of that test (module level, or a method
of a class). Prints how many references it checked.

    scripts/check-proofs.py [--root DIR]
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = (
    "README.md",
    "roles/*/README.md",
    "django_app/README.md",
    "inventories/*/README.md",
    "systemd/README.md",
    "docs/**/*.md",
)

# path/to/test_x.py::name[::name...][param], or a bare ::test_name after one;
# never in the middle of a longer token (std::move, [::1], a.py::b inside a URL path).
REFERENCE = re.compile(
    r"(?<![\w/.:-])"
    r"(?P<path>(?:[\w.-]+/)*[\w.-]+\.py)?"
    r"::(?P<names>[A-Za-z_]\w*(?:::[A-Za-z_]\w*)*)"
    r"(?P<param>\[[^\]\s`]*\])?"
)


@dataclass(frozen=True)
class Reference:
    doc: Path
    line: int
    path: str
    names: tuple[str, ...]
    text: str


@dataclass
class Definitions:
    """The functions of one Python file: module level and per class."""

    functions: set[str] = field(default_factory=set)
    classes: dict[str, Definitions] = field(default_factory=dict)

    @classmethod
    def parse(cls, source: str) -> Definitions:
        return cls.from_body(ast.parse(source).body)

    @classmethod
    def from_body(cls, body: list[ast.stmt]) -> Definitions:
        found = cls()
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                found.functions.add(node.name)
            elif isinstance(node, ast.ClassDef):
                found.classes[node.name] = cls.from_body(node.body)
        return found

    def has(self, names: tuple[str, ...]) -> bool:
        """names: (test,) anywhere at module level or in a class; (Class, ..., test) exactly."""
        *outer, test = names
        if not outer:
            return test in self.functions or any(test in c.functions for c in self.classes.values())
        scope = self
        for name in outer:
            if name not in scope.classes:
                return False
            scope = scope.classes[name]
        return test in scope.functions


def documents(root: Path) -> list[Path]:
    found: set[Path] = set()
    for pattern in DOCS:
        found.update(p for p in root.glob(pattern) if p.is_file())
    return sorted(found)


def references(doc: Path, root: Path) -> list[Reference]:
    """Every reference in one document, with bare ::names resolved to the file named before them."""
    found: list[Reference] = []
    last_path: str | None = None
    for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), start=1):
        for match in REFERENCE.finditer(line):
            path, names = match["path"], tuple(match["names"].split("::"))
            if path is None:
                if not names[0].lower().startswith("test"):
                    continue  # C++ std::move, Rust paths...: not a test reference
                path = last_path or ""
            else:
                last_path = path
            found.append(Reference(doc.relative_to(root), number, path, names, match[0]))
    return found


def resolve(ref: Reference, root: Path) -> Path | None:
    for base in (root, root / ref.doc.parent):
        candidate = base / ref.path
        if candidate.is_file():
            return candidate
    return None


def problem(ref: Reference, root: Path, cache: dict[Path, Definitions | str]) -> str | None:
    if not ref.path:
        return f"{ref.text}: no test file named before this bare ::name"
    if not ref.names[-1].startswith("test"):
        return f"{ref.text}: {ref.names[-1]} is not a test (pytest collects test* functions)"
    path = resolve(ref, root)
    if path is None:
        return f"{ref.text}: {ref.path} does not exist"
    if path not in cache:
        try:
            cache[path] = Definitions.parse(path.read_text(encoding="utf-8"))
        except SyntaxError as e:
            cache[path] = f"{ref.path} does not parse: {e}"
    parsed = cache[path]
    if isinstance(parsed, str):
        return f"{ref.text}: {parsed}"
    if not parsed.has(ref.names):
        return f"{ref.text}: {ref.path} has no def {'::'.join(ref.names)}"
    return None


def check(root: Path) -> tuple[int, list[str]]:
    """(references checked, problems as 'doc:line: ...')."""
    cache: dict[Path, Definitions | str] = {}
    count, problems = 0, []
    for doc in documents(root):
        for ref in references(doc, root):
            count += 1
            found = problem(ref, root, cache)
            if found:
                problems.append(f"{ref.doc}:{ref.line}: {found}")
    return count, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root (default: this checkout)")
    args = parser.parse_args(argv)
    count, problems = check(args.root.resolve())
    for p in problems:
        print(p)
    print(f"check-proofs: {count} test reference(s) checked, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
