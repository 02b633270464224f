"""Tests: a real redis-server that redisops/tests/conftest.py starts on a free
loopback port, with the ACL users of redisops.redis_acl (one per purpose).

The port is chosen here, at import, and exported, so subprocesses (Celery
worker, management commands) that import these settings reach the same server.
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

from .base import *  # noqa: F403
from .base import (
    beat_schedule_filename,
    databases,
    env,
    env_int,
    redis_settings,
    static_root,
)


def free_port() -> int:
    """A free loopback port. Here, not imported from redisops.tests: these
    settings must load where the tests package is not installed (the wheel
    leaves it out)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if "REDISOPS_TEST_REDIS_PORT" not in os.environ:
    os.environ["REDISOPS_TEST_REDIS_PORT"] = str(free_port())
REDIS_TEST_PORT = int(os.environ["REDISOPS_TEST_REDIS_PORT"])
# Created once, by the process that imports these settings first (pytest);
# subprocesses inherit the variable. The conftest removes it at the end when
# REDIS_TEST_DIR_OWNED says this process created it.
REDIS_TEST_DIR_OWNED = "REDISOPS_TEST_DIR" not in os.environ
if REDIS_TEST_DIR_OWNED:
    os.environ["REDISOPS_TEST_DIR"] = tempfile.mkdtemp(prefix="redisops-test-")
REDIS_TEST_DIR = os.environ["REDISOPS_TEST_DIR"]
# Password of every test ACL user: "<user>-pw" (test only).
REDIS_TEST_URLS = {
    "REDIS_BROKER_URL": f"redis://app_broker:app_broker-pw@127.0.0.1:{REDIS_TEST_PORT}/0",
    "REDIS_RESULT_URL": f"redis://app_results:app_results-pw@127.0.0.1:{REDIS_TEST_PORT}/0",
    "REDIS_CACHE_URL": f"redis://app_cache:app_cache-pw@127.0.0.1:{REDIS_TEST_PORT}/0",
    "REDIS_APP_URL": f"redis://app_data:app_data-pw@127.0.0.1:{REDIS_TEST_PORT}/0",
    "REDIS_MONITOR_URL": f"redis://app_monitor:app_monitor-pw@127.0.0.1:{REDIS_TEST_PORT}/0",
    "REDIS_BUDGET_URL": f"redis://app_budget:app_budget-pw@127.0.0.1:{REDIS_TEST_PORT}/0",
}
# The fixtures' own login (flush, restart checks); not an app user.
REDIS_TEST_ADMIN_URL = f"redis://test_admin:test_admin-pw@127.0.0.1:{REDIS_TEST_PORT}/0"
# A test may point a subprocess's connections at its own server(s):
# REDIS_TEST_APP_URL replaces REDIS_APP_URL, REDIS_TEST_BROKER_URL the broker's...
for _name in REDIS_TEST_URLS:
    _override = os.environ.get(_name.replace("REDIS_", "REDIS_TEST_", 1))
    if _override:
        REDIS_TEST_URLS[_name] = _override
REDIS_URLS = REDIS_TEST_URLS
REDIS_TLS = None
_redis = redis_settings(REDIS_URLS, REDIS_TLS)
CELERY_BROKER_URL = _redis.celery_broker_url
CELERY_BROKER_TRANSPORT = _redis.celery_broker_transport
CELERY_BROKER_TRANSPORT_OPTIONS = _redis.celery_broker_transport_options
CELERY_BROKER_USE_SSL = _redis.celery_broker_use_ssl
CELERY_RESULT_BACKEND = _redis.celery_result_backend
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = _redis.celery_result_backend_transport_options
CELERY_REDIS_BACKEND_USE_SSL = _redis.celery_redis_backend_use_ssl
CACHES = _redis.caches
REDIS_APP_URL = _redis.redis_app_url
STATE_DIR = Path(REDIS_TEST_DIR)
DATABASES = databases(STATE_DIR)
STATIC_ROOT = static_root(STATE_DIR)
CELERY_BEAT_SCHEDULE_FILENAME = beat_schedule_filename(STATE_DIR)

DEBUG = False
SECRET_KEY = "test-only-insecure-key"  # noqa: S105
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
# https://docs.djangoproject.com/en/5.2/ref/settings/#password-hashers
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Short timings so the stream tests see claims and dead letters quickly.
APP_STREAM_CLAIM_IDLE_MS = 300
APP_STREAM_MAX_DELIVERIES = 3
APP_LIMITED_ENDPOINT = {"algorithm": "gcra", "limit": 3, "period": 60}
# Written by the tests' session fixture (redisops/tests/api_clients.py).
APP_API_TOKENS_FILE = env("APP_API_TOKENS_FILE", str(STATE_DIR / "api-tokens"))
# Room for every test's calls; a test of a limit sets its own.
APP_RATE_TASKS = {"algorithm": "gcra", "limit": 100_000, "period": 60}
APP_RATE_PUBLISH = {"algorithm": "gcra", "limit": 100_000, "period": 60}
APP_RATE_STREAM = {"algorithm": "gcra", "limit": 100_000, "period": 60}
APP_RATE_READ = {"algorithm": "gcra", "limit": 100_000, "period": 60}
APP_NOTIFY_RATE = (3, 1)
# Small enough for a test to see trim_streams cap the dead letters; a
# subprocess may be given its own.
APP_STREAM_DLQ_MAXLEN = env_int("APP_STREAM_DLQ_MAXLEN", 50)
# Small enough for a test to fill a ledger through the API.
APP_LEDGER_MAX_ACCOUNTS = 20
# Retries of flaky within a second or two: 0.1-0.2, 0.2-0.4, 0.4-0.8, then the
# cap (0.5-1.0).
APP_RETRY_BACKOFF = {"base": 0.2, "cap": 1.0}
LOG_LEVEL = "INFO"
