"""`make wheelhouse` output installs offline and the app imports from it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from redisops.tests.conftest import APP_DIR
from redisops.tests.test_settings import PRODUCTION_ENV


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our scripts and venv, no shell
        cmd, capture_output=True, text=True, timeout=300, check=False, **kwargs
    )


@pytest.mark.slow
def test_wheelhouse_installs_with_no_index_and_serves_wsgi(tmp_path: Path) -> None:
    """Build the wheelhouse for this Python, install it into a fresh venv with
    pip --no-index (as on a host without PyPI), import config.wsgi there."""
    pyver = f"{sys.version_info.major}.{sys.version_info.minor}"
    wheelhouse = tmp_path / "wheelhouse"
    built = run(
        ["bash", str(APP_DIR / "scripts" / "wheelhouse.sh"), str(wheelhouse), pyver]
    )
    assert built.returncode == 0, built.stderr[-3000:]
    wheels = {p.name.split("-")[0].lower() for p in wheelhouse.glob("*.whl")}
    # redis needs it below Python 3.11.3 (Ubuntu 22.04, Debian 12), whatever
    # Python built the wheelhouse.
    assert {"async_timeout", "hiredis", "redisops_app", "django"} <= wheels
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)]).check_returncode()
    installed = run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-index",
            "--find-links",
            str(wheelhouse),
            "redisops-app",
        ]
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS", "DJANGO"))}
    tokens = tmp_path / "api-tokens"
    tokens.write_text("# no client yet\n")
    env.update(
        PRODUCTION_ENV,
        DJANGO_STATE_DIR=str(tmp_path / "state"),
        APP_API_TOKENS_FILE=str(tokens),
    )
    code = (
        "import config.wsgi, redisops, django; "
        "print(type(config.wsgi.application).__name__, redisops.__file__)"
    )
    # Outside the source tree, so the import must come from the venv.
    imported = run([str(venv / "bin" / "python"), "-c", code], env=env, cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr[-3000:]
    assert imported.stdout.startswith("WSGIHandler ")
    assert str(venv) in imported.stdout
    checked = run(
        [str(venv / "bin" / "redisops-manage"), "check"], env=env, cwd=tmp_path
    )
    assert checked.returncode == 0, checked.stderr[-3000:]
