"""Production settings: loud about what is missing, clean under check --deploy."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tempfile
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
    "REDIS_BUDGET_URL": "redis://app_budget:pw@redis.example.com:6379/0",
    # The web process: the URLs above are exactly its users'.
    "APP_PROCESS": "web",
    "DJANGO_STATE_DIR": "/nonexistent-state",
    # Only the web process reads it (config.wsgi); settings need the path.
    "APP_API_TOKENS_FILE": "/nonexistent-api-tokens",
}


def run_manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REDIS", "DJANGO", "APP_", "CELERY_", "DATABASE"))
    }
    return subprocess.run(  # noqa: S603 - manage.py with fixed args, no shell
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
        "REDIS_BUDGET_URL",
        "APP_PROCESS",
        "DJANGO_STATE_DIR",
        "APP_API_TOKENS_FILE",
    ],
)
def test_production_fails_naming_the_missing_variable(missing: str) -> None:
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != missing}
    result = run_manage("check", env=env)
    assert result.returncode != 0
    assert f"environment variable {missing} is required" in result.stderr


PROCESS_URLS = {
    "web": [
        "REDIS_APP_URL",
        "REDIS_BROKER_URL",
        "REDIS_BUDGET_URL",
        "REDIS_CACHE_URL",
        "REDIS_RESULT_URL",
    ],
    "worker": ["REDIS_APP_URL", "REDIS_BROKER_URL", "REDIS_RESULT_URL"],
    "beat": ["REDIS_BROKER_URL"],
    "consumers": ["REDIS_APP_URL"],
    "manage": [
        "REDIS_APP_URL",
        "REDIS_BROKER_URL",
        "REDIS_BUDGET_URL",
        "REDIS_CACHE_URL",
        "REDIS_MONITOR_URL",
        "REDIS_RESULT_URL",
    ],
}
ONLY = (
    "import json; from django.conf import settings as s; from config.celery_app "
    "import app; print(json.dumps([sorted(s.REDIS_URLS), app.conf.broker_url, "
    "app.conf.result_backend, s.CACHES['default']['BACKEND'], s.REDIS_APP_URL]))"
)


@pytest.mark.parametrize("process", sorted(PROCESS_URLS))
def test_each_process_needs_and_reads_only_its_redis_urls(process: str) -> None:
    """Given every URL, a process reads only those of its users (the env file
    the django_app role writes holds just those); without one it stops at
    start, naming the variable and the user, rather than answer 500 later."""
    every = {
        f"REDIS_{p}_URL": "redis://u:p@redis.example.com:6379/0"
        for p in ("BROKER", "RESULT", "CACHE", "APP", "MONITOR", "BUDGET")
    }
    env = {**PRODUCTION_ENV, **every, "APP_PROCESS": process}
    urls, broker, results, cache, app_url = shell_json(ONLY, env)
    assert urls == PROCESS_URLS[process]
    assert (broker is not None) == ("REDIS_BROKER_URL" in urls)
    assert (results is not None) == ("REDIS_RESULT_URL" in urls)
    assert cache.endswith("DummyCache") == ("REDIS_CACHE_URL" not in urls)
    assert (app_url is not None) == ("REDIS_APP_URL" in urls)
    for missing in PROCESS_URLS[process]:
        result = run_manage("check", env={k: v for k, v in env.items() if k != missing})
        assert result.returncode != 0
        assert f"{missing} is required but not set (the {process} process" in (
            result.stderr
        )


def test_production_refuses_an_unknown_process() -> None:
    result = run_manage("check", env={**PRODUCTION_ENV, "APP_PROCESS": "webb"})
    assert "APP_PROCESS must be one of web, worker, beat, consumers, manage" in (
        result.stderr
    )


def shell_json(code: str, env: dict[str, str]) -> list:
    result = run_manage("shell", "-c", code, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


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
    """Development keeps its own state directory default: django_app/.state."""
    code = "from django.conf import settings as s; print(s.STATE_DIR, s.DEBUG)"
    result = run_manage(
        "shell", "-c", code, env={"DJANGO_SETTINGS_MODULE": "config.settings.local"}
    )
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.split() == [str(APP_DIR / ".state"), "True"], result.stdout


def test_production_settings_derive_from_the_environment() -> None:
    """The effective values, assigned by name from the URLs and the state
    directory (settings print, Celery's app.conf for the broker)."""
    code = (
        "import json; from django.conf import settings as s; "
        "from config.celery_app import app; "
        "print(json.dumps([str(s.STATE_DIR), s.DATABASES['default']['NAME'], "
        "s.STATIC_ROOT, s.CELERY_BEAT_SCHEDULE_FILENAME, s.CELERY_BROKER_URL, "
        "app.conf.broker_url, app.conf.broker_transport_options, "
        "app.conf.result_backend, s.CACHES['default']['LOCATION'], "
        "s.REDIS_APP_URL]))"
    )
    env = {**PRODUCTION_ENV, "DJANGO_STATE_DIR": "/srv/state"}
    result = run_manage("shell", "-c", code, env=env)
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values == [
        "/srv/state",
        "/srv/state/db.sqlite3",
        "/srv/state/static",
        "/srv/state/celerybeat-schedule",
        env["REDIS_BROKER_URL"],
        env["REDIS_BROKER_URL"],
        {"global_keyprefix": "broker:", "visibility_timeout": 3600},
        env["REDIS_RESULT_URL"],
        env["REDIS_CACHE_URL"],
        env["REDIS_APP_URL"],
    ]


DERIVED = {
    "REDIS_URLS": {
        "CELERY_BROKER_URL",
        "CELERY_BROKER_TRANSPORT_OPTIONS",
        "CELERY_RESULT_BACKEND",
        "CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS",
        "CACHES",
        "REDIS_APP_URL",
    },
    "STATE_DIR": {"DATABASES", "STATIC_ROOT", "CELERY_BEAT_SCHEDULE_FILENAME"},
}


@pytest.mark.parametrize("module", ["base", "production", "test", "local"])
def test_settings_are_assigned_by_name(module: str) -> None:
    """No globals().update(): a search for `CACHES =` finds every place that
    sets it. A module that sets REDIS_URLS or STATE_DIR assigns every
    setting derived from it, or a stale value from base.py would survive."""
    tree = ast.parse((APP_DIR / "config" / "settings" / f"{module}.py").read_text())
    calls = {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    assert not calls & {"globals", "vars", "setattr", "exec"}
    assigned = {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    for source, derived in DERIVED.items():
        if source in assigned:
            assert derived <= assigned, (source, derived - assigned)
    if module == "base":
        assert set().union(*DERIVED.values()) <= assigned


def test_test_settings_load_without_the_tests_package() -> None:
    """The wheel leaves redisops.tests out; config.settings.test must not need it."""
    code = (
        "import sys; sys.modules['redisops.tests'] = None; "  # import fails
        "import config.settings.test as t; print(t.REDIS_TEST_PORT > 0)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDISOPS_TEST")}
    env["REDISOPS_TEST_DIR"] = tempfile.mkdtemp(prefix="redisops-settings-")
    try:
        result = subprocess.run(  # noqa: S603 - this interpreter, fixed code
            [sys.executable, "-c", code],
            cwd=APP_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        shutil.rmtree(env["REDISOPS_TEST_DIR"], ignore_errors=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("APP_LIMITED_ALGORITHM", "leaky", "APP_LIMITED_ALGORITHM must be one of"),
        ("APP_LIMITED_LIMIT", "0", "APP_LIMITED_LIMIT must be >= 1"),
        ("APP_LIMITED_PERIOD", "0", "APP_LIMITED_PERIOD must be >= 1"),
        # limit x period beyond what the scripts' integer reply can carry
        ("APP_LIMITED_LIMIT", str(10**12), "limit x period too large"),
        ("APP_RATE_TASKS_LIMIT", "0", "APP_RATE_TASKS_LIMIT must be >= 1"),
        ("APP_RATE_PUBLISH_PERIOD", "0", "APP_RATE_PUBLISH_PERIOD must be >= 1"),
        ("APP_RATE_STREAM_ALGORITHM", "leaky", "APP_RATE_STREAM_ALGORITHM must be"),
        ("APP_RATE_READ_LIMIT", "x", "APP_RATE_READ_LIMIT must be an integer"),
    ],
)
def test_bad_rate_limit_setting_fails_at_start(
    variable: str, value: str, message: str
) -> None:
    """Not a 500 on the first request to /api/limited: the process won't start."""
    result = run_manage("check", env={**PRODUCTION_ENV, variable: value})
    assert result.returncode != 0
    assert message in result.stderr


def test_api_rate_limits_default_per_endpoint() -> None:
    code = (
        "import json; from django.conf import settings as s; print(json.dumps("
        "[s.APP_RATE_TASKS, s.APP_RATE_PUBLISH, s.APP_RATE_STREAM, s.APP_RATE_READ]))"
    )
    result = run_manage("shell", "-c", code, env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr
    gcra = {"algorithm": "gcra", "period": 60}
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [
        {**gcra, "limit": 60},
        {**gcra, "limit": 60},
        {**gcra, "limit": 60},
        {**gcra, "limit": 600},
    ]


def test_rate_limit_setting_accepts_every_algorithm() -> None:
    from config.settings.base import rate_limit_setting
    from redisops.ratelimit import ALGORITHMS

    for name in ALGORITHMS:
        assert rate_limit_setting("X", name, 1, 1)["algorithm"] == name


def test_production_hsts_defaults_are_not_binding() -> None:
    """includeSubDomains and preload are opt-in; check --deploy stays clean
    (test_production_check_deploy_is_clean) with or without them."""
    code = (
        "from django.conf import settings as s; "
        "print(s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, "
        "s.SECURE_HSTS_PRELOAD, s.DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS)"
    )
    result = run_manage("shell", "-c", code, env=PRODUCTION_ENV)
    values = result.stdout.strip().splitlines()[-1].split()
    assert values == ["60", "False", "False", "True"], result.stdout + result.stderr
    opted_in = {
        **PRODUCTION_ENV,
        "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
        "DJANGO_SECURE_HSTS_PRELOAD": "true",
        "DJANGO_SECURE_HSTS_SECONDS": "31536000",
    }
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=opted_in)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("value", "expected"), [(None, "False"), ("true", "True"), ("0", "False")]
)
def test_demo_failure_rules_are_off_unless_enabled(
    value: str | None, expected: str
) -> None:
    """APP_STREAM_DEMO_FAILURES (demos and drills only) defaults to false."""
    env = dict(PRODUCTION_ENV)
    if value is not None:
        env["APP_STREAM_DEMO_FAILURES"] = value
    code = "from django.conf import settings; print(settings.APP_STREAM_DEMO_FAILURES)"
    result = run_manage("shell", "-c", code, env=env)
    assert result.stdout.strip().splitlines()[-1:] == [expected], result.stderr


def test_demo_failure_setting_refuses_a_non_boolean() -> None:
    result = run_manage(
        "check", env={**PRODUCTION_ENV, "APP_STREAM_DEMO_FAILURES": "maybe"}
    )
    assert result.returncode != 0
    assert "APP_STREAM_DEMO_FAILURES must be true or false" in result.stderr


def test_production_trusts_no_proxy_header_by_setting() -> None:
    """https comes from wsgi.url_scheme (gunicorn decides by peer), never
    from a header Django would believe from anyone."""
    code = (
        "from django.conf import settings as s; "
        "print(s.SECURE_PROXY_SSL_HEADER, s.SECURE_SSL_REDIRECT, "
        "hasattr(s, 'APP_TRUSTED_PROXY_COUNT'))"
    )
    result = run_manage("shell", "-c", code, env=PRODUCTION_ENV)
    assert result.stdout.strip().splitlines()[-1:] == ["None True False"], result.stderr


@pytest.mark.parametrize("value", ["1", "0", ""])
def test_removed_trusted_proxy_count_stops_the_process(value: str) -> None:
    result = run_manage(
        "check", env={**PRODUCTION_ENV, "APP_TRUSTED_PROXY_COUNT": value}
    )
    assert result.returncode != 0
    assert "environment variable APP_TRUSTED_PROXY_COUNT was removed" in result.stderr


def test_bounds_default_as_documented() -> None:
    code = (
        "import json; from django.conf import settings as s; print(json.dumps(["
        "s.APP_MAX_COUNTDOWN, s.CELERY_RESULT_EXPIRES, s.APP_STREAM_MAXLEN, "
        "s.APP_STREAM_ENTRY_MAX_BYTES, s.APP_STREAM_DLQ_MAXLEN, "
        "s.APP_LEDGER_MAX_ACCOUNTS, s.APP_LEDGER_TTL, s.APP_DATA_MEMORY_BUDGET]))"
    )
    result = run_manage("shell", "-c", code, env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values == [60, 3600, 10_000, 4096, 1000, 100, 6 * 3600, 60]


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("APP_MAX_COUNTDOWN", "301", "APP_MAX_COUNTDOWN must be 0-300 s"),
        ("APP_MAX_COUNTDOWN", "-1", "APP_MAX_COUNTDOWN must be 0-300 s"),
        ("CELERY_RESULT_EXPIRES", "0", "CELERY_RESULT_EXPIRES must be >= 1 s"),
        ("APP_STREAM_MAXLEN", "0", "APP_STREAM_MAXLEN must be >= 1"),
        ("APP_STREAM_DLQ_MAXLEN", "0", "APP_STREAM_DLQ_MAXLEN must be >= 1"),
        ("APP_STREAM_ENTRY_MAX_BYTES", "0", "APP_STREAM_ENTRY_MAX_BYTES must be >= 1"),
        ("APP_LEDGER_MAX_ACCOUNTS", "0", "APP_LEDGER_MAX_ACCOUNTS must be >= 1"),
        ("APP_LEDGER_TTL", "3600", "APP_LEDGER_TTL must exceed CELERY_VISIBILITY"),
        ("APP_DATA_MEMORY_BUDGET", "0", "APP_DATA_MEMORY_BUDGET must be 1-99"),
        ("APP_DATA_MEMORY_BUDGET", "100", "APP_DATA_MEMORY_BUDGET must be 1-99"),
    ],
)
def test_a_bound_out_of_range_stops_the_process(
    variable: str, value: str, message: str
) -> None:
    result = run_manage("check", env={**PRODUCTION_ENV, variable: value})
    assert result.returncode != 0
    assert message in result.stderr
