"""Production settings: loud about what is missing, clean under check --deploy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

APP_DIR = Path(__file__).resolve().parents[2]
SECRET = "x" * 20 + "-production-secret-key-with-enough-entropy-0123456789"
PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "config.settings.production",
    "DJANGO_SECRET_KEY": SECRET,
    "DJANGO_ALLOWED_HOSTS": "app.example.com",
    "REDIS_BROKER_URL": "redis://app_broker:pw@redis.example.com:6379/0",
    "REDIS_RESULT_URL": "redis://app_results:pw@redis.example.com:6379/0",
    "REDIS_CACHE_URL": "redis://app_cache:pw@redis.example.com:6379/0",
    "REDIS_APP_URL": "sentinel://app_data:pw@s1:26379,s2:26379/0?master_name=main",
}


def run_manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("REDIS", "DJANGO"))
    }
    clean["DJANGO_STATE_DIR"] = "/nonexistent-state"
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=APP_DIR,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_production_check_deploy_is_clean() -> None:
    result = run_manage(
        "check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    "missing",
    [
        "DJANGO_SECRET_KEY",
        "DJANGO_ALLOWED_HOSTS",
        "REDIS_BROKER_URL",
        "REDIS_RESULT_URL",
        "REDIS_CACHE_URL",
        "REDIS_APP_URL",
    ],
)
def test_production_fails_naming_the_missing_variable(missing: str) -> None:
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != missing}
    result = run_manage("check", env=env)
    assert result.returncode != 0
    assert f"environment variable {missing} is required" in result.stderr


def test_production_refuses_a_broker_db_other_than_0() -> None:
    env = {**PRODUCTION_ENV, "REDIS_BROKER_URL": "redis://u:p@h:6379/3"}
    result = run_manage("check", env=env)
    assert "REDIS_BROKER_URL must use database 0" in result.stderr


def test_manage_defaults_to_production_settings() -> None:
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "DJANGO_SETTINGS_MODULE"}
    del env["DJANGO_SECRET_KEY"]
    result = run_manage("check", env=env)
    assert "DJANGO_SECRET_KEY is required" in result.stderr


def test_local_settings_need_nothing_from_the_environment() -> None:
    result = run_manage(
        "check", env={"DJANGO_SETTINGS_MODULE": "config.settings.local"}
    )
    assert result.returncode == 0, result.stderr
