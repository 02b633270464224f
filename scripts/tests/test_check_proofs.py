"""scripts/check-proofs.py on a small repository made in tmp_path (make lint runs this)."""

from __future__ import annotations

from pathlib import Path

import pytest
from script_loader import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "check-proofs.py"

TESTS = """
import pytest

def test_kept():
    pass

@pytest.mark.parametrize("case", ["a", "b"])
def test_param(case):
    pass

async def test_async():
    pass

def helper():
    pass

class TestGroup:
    def test_method(self):
        pass
"""


check_proofs = load_script(SCRIPT, "check_proofs")


def repo(tmp_path: Path, doc: str) -> Path:
    (tmp_path / "molecule/x/tests").mkdir(parents=True)
    (tmp_path / "molecule/x/tests/test_x.py").write_text(TESTS)
    (tmp_path / "docs/runbooks").mkdir(parents=True)
    (tmp_path / "docs/runbooks/page.md").write_text(doc)
    return tmp_path


@pytest.mark.parametrize(
    ("ref", "count"),
    [
        ("`molecule/x/tests/test_x.py::test_kept`", 1),
        ("`molecule/x/tests/test_x.py::test_param[b]`", 1),
        ("`molecule/x/tests/test_x.py::test_async`", 1),
        ("`molecule/x/tests/test_x.py::test_method`", 1),
        ("`molecule/x/tests/test_x.py::TestGroup::test_method`", 1),
        ("molecule/x/tests/test_x.py::test_kept, ::test_async", 2),
        ("`x/tests/test_x.py::test_kept` (from the document's folder)", 1),
    ],
)
def test_good_reference_passes(tmp_path, ref, count, capsys):
    root = repo(tmp_path, f"# Page\n\nTested by: {ref}\n")
    if ref.startswith("`x/"):
        (root / "docs/runbooks/x/tests").mkdir(parents=True)
        (root / "docs/runbooks/x/tests/test_x.py").write_text(TESTS)
    assert check_proofs.main(["--root", str(root)]) == 0
    assert f"{count} test reference(s) checked, 0 problem(s)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("ref", "reason"),
    [
        ("`molecule/x/tests/test_x.py::test_gone`", "has no def test_gone"),
        ("`molecule/x/tests/test_nope.py::test_kept`", "test_nope.py does not exist"),
        ("`molecule/x/tests/test_x.py::Other::test_method`", "has no def Other::test_method"),
        ("`molecule/x/tests/test_x.py::helper`", "helper is not a test"),
        ("molecule/x/tests/test_x.py::test_kept, ::test_gone", "has no def test_gone"),
    ],
)
def test_bad_reference_fails_with_file_and_line(tmp_path, ref, reason, capsys):
    root = repo(tmp_path, f"# Page\n\nsome claim\nTested by: {ref}\n")
    assert check_proofs.main(["--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "docs/runbooks/page.md:4: " in out
    assert reason in out
    assert "1 problem(s)" in out


def test_other_double_colons_are_not_references(tmp_path):
    root = repo(tmp_path, "std::move, [::1]:6379, Class::method, https://h/a.py::x\n")
    assert check_proofs.check(root) == (0, [])


def test_every_document_kind_is_read(tmp_path):
    root = repo(tmp_path, "`molecule/x/tests/test_x.py::test_kept`\n")
    for doc in ("README.md", "roles/r/README.md", "django_app/README.md", "inventories/i/README.md", "docs/a/b.md"):
        (root / doc).parent.mkdir(parents=True, exist_ok=True)
        (root / doc).write_text("`molecule/x/tests/test_x.py::test_missing`\n")
    count, problems = check_proofs.check(root)
    assert count == 6
    assert len(problems) == 5
