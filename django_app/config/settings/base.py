"""Settings shared by every environment. Values come from the environment.

Defaults here are safe for local development only; production.py requires the
secrets and URLs and fails naming the missing variable.
https://docs.djangoproject.com/en/5.2/ref/settings/
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from redisops import connections, redis_acl
from redisops.ratelimit import ALGORITHMS, limit_problem

# django_app/ in a source tree; site-packages when installed (only used for
# development defaults).
BASE_DIR = Path(__file__).resolve().parent.parent.parent


def env(name: str, default: str = "") -> str:
    """A string from the environment, stripped; ``default`` when unset or empty."""
    value = os.environ.get(name, "").strip()
    return value or default


def env_required(name: str, why: str = "") -> str:
    """A value production cannot run without: fail loudly, naming the variable."""
    value = env(name)
    if not value:
        hint = f" ({why})" if why else ""
        raise ImproperlyConfigured(
            f"environment variable {name} is required but not set{hint}; "
            "see django_app/README.md. For development use "
            "DJANGO_SETTINGS_MODULE=config.settings.local"
        )
    return value


def env_int(name: str, default: int) -> int:
    value = env(name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(
            f"{name} must be an integer, got {value!r}"
        ) from None


def env_bool(name: str, default: bool) -> bool:
    value = env(name).lower()
    if not value:
        return default
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, got {value!r}")


def env_removed(name: str, why: str) -> None:
    """A variable this version no longer reads: refuse it, so nobody believes
    it still does something."""
    if name in os.environ:
        raise ImproperlyConfigured(
            f"environment variable {name} was removed ({why}); "
            "delete it from the environment. See django_app/README.md"
        )


def env_list(name: str, default: list[str]) -> list[str]:
    value = env(name)
    if not value:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


# GENERAL
# ------------------------------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/ref/settings/#debug
DEBUG = env_bool("DJANGO_DEBUG", False)
# https://docs.djangoproject.com/en/5.2/ref/settings/#secret-key
SECRET_KEY = env("DJANGO_SECRET_KEY", "dev-only-insecure-key-do-not-use-in-production")
# https://docs.djangoproject.com/en/5.2/ref/settings/#allowed-hosts
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
# https://docs.djangoproject.com/en/5.2/ref/settings/#csrf-trusted-origins
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])
TIME_ZONE = "UTC"
USE_TZ = True
LANGUAGE_CODE = "en-us"
USE_I18N = False
ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


# STATE: writable paths (SQLite file, static files, beat schedule)
# ------------------------------------------------------------------------------
# Each environment sets STATE_DIR and assigns the three settings below from
# it; production requires DJANGO_STATE_DIR (the units' StateDirectory, which
# the django_app role writes into the env file).


def databases(state_dir: Path) -> dict[str, Any]:
    """https://docs.djangoproject.com/en/5.2/ref/settings/#databases
    Any DATABASE_URL dj-database-url understands; SQLite in state_dir otherwise."""
    return {
        "default": dj_database_url.parse(
            env("DATABASE_URL", f"sqlite:///{state_dir / 'db.sqlite3'}"),
            conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        )
    }


def static_root(state_dir: Path) -> str:
    """https://docs.djangoproject.com/en/5.2/ref/settings/#static-root"""
    return env("DJANGO_STATIC_ROOT", str(state_dir / "static"))


def beat_schedule_filename(state_dir: Path) -> str:
    """https://docs.celeryq.dev/en/stable/userguide/configuration.html#beat-schedule-filename"""
    return env("CELERY_BEAT_SCHEDULE_FILENAME", str(state_dir / "celerybeat-schedule"))


# Development: django_app/.state/ (production.py requires DJANGO_STATE_DIR).
STATE_DIR = Path(env("DJANGO_STATE_DIR", str(BASE_DIR / ".state")))
DATABASES = databases(STATE_DIR)
STATIC_ROOT = static_root(STATE_DIR)
CELERY_BEAT_SCHEDULE_FILENAME = beat_schedule_filename(STATE_DIR)
STATIC_URL = "static/"

# APPS / MIDDLEWARE
# ------------------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.staticfiles",
    "redisops.apps.RedisOpsConfig",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "redisops.middleware.JsonErrorsMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
TEMPLATES: list[dict[str, Any]] = []
# https://docs.djangoproject.com/en/5.2/ref/settings/#csrf-failure-view
CSRF_FAILURE_VIEW = "redisops.views.csrf_failure"
# URLs without a trailing slash are the API; no redirects to a slash.
APPEND_SLASH = False

# HTTP / BODY LIMITS
# ------------------------------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/ref/settings/#data-upload-max-memory-size
# JSON bodies larger than this answer 400 (redisops.views).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("APP_MAX_BODY_BYTES", 64 * 1024)
# Proxy headers are trusted by connection, not by a setting: the client
# address is REMOTE_ADDR for a TCP peer and the proxy's X-Forwarded-For only
# for a UNIX-socket peer (redisops.middleware.client_address); https comes
# from wsgi.url_scheme, which gunicorn sets from X-Forwarded-Proto only for
# peers it trusts (the socket). A leftover setting that claimed otherwise
# stops the process rather than being silently ignored.
env_removed(
    "APP_TRUSTED_PROXY_COUNT",
    "the client address comes from the connection: REMOTE_ADDR, or "
    "X-Forwarded-For only when the request came through the proxy's socket",
)

# API AUTHENTICATION: bearer tokens, only their hashes on the host
# ------------------------------------------------------------------------------
# One "<client name> <sha256 hex of the token>" per line (redisops.api_tokens),
# read at start by the web process and again whenever it changes. Unset (here,
# for development): no client is accepted. production.py requires it.
APP_API_TOKENS_FILE = env("APP_API_TOKENS_FILE")

# STORAGE BUDGET: the API refuses application data (stream entries, published
# messages, ledger payments) with 503 while Redis's used_memory is above this
# percent of its maxmemory, read as the app_budget user (redisops.storage_budget);
# the rest stays for the broker, the results and beat's heartbeat.
APP_DATA_MEMORY_BUDGET = env_int("APP_DATA_MEMORY_BUDGET", 60)
if not 1 <= APP_DATA_MEMORY_BUDGET <= 99:
    raise ImproperlyConfigured(
        f"APP_DATA_MEMORY_BUDGET must be 1-99 (percent of maxmemory), got "
        f"{APP_DATA_MEMORY_BUDGET}"
    )

# REDIS: one URL and one ACL user per purpose (redisops.redis_acl)
# ------------------------------------------------------------------------------
# Development: the URLs the environment gives, or, when it gives none, every
# URL pointing at a local Redis. Production gives each process (APP_PROCESS)
# only the URLs of its users (redis_acl.PROCESS_USERS) and requires them.
_DEV_REDIS = "redis://127.0.0.1:6379/0"
REDIS_URLS = {u.env: env(u.env) for u in redis_acl.USERS if env(u.env)} or {
    u.env: _DEV_REDIS for u in redis_acl.USERS
}


def redis_tls_from_env() -> connections.RedisTls | None:
    """TLS to Redis for rediss:// URLs: REDIS_TLS_CA_FILE, the CA that signed
    Redis's certificate (verified, with the URL's host name), and the client's
    REDIS_TLS_CERT_FILE + REDIS_TLS_KEY_FILE when Redis requires them
    (tls-auth-clients yes). None without a CA.
    https://redis.io/docs/latest/operate/oss_and_stack/management/security/encryption/"""
    ca, cert, key = (env(f"REDIS_TLS_{n}_FILE") for n in ("CA", "CERT", "KEY"))
    if not ca:
        if cert or key:
            raise ImproperlyConfigured(
                "REDIS_TLS_CERT_FILE/REDIS_TLS_KEY_FILE need REDIS_TLS_CA_FILE"
            )
        return None
    try:
        return connections.RedisTls(ca, cert, key)
    except ValueError as exc:
        raise ImproperlyConfigured(f"REDIS_TLS_*_FILE: {exc}") from None


REDIS_TLS = redis_tls_from_env()

# CELERY
# ------------------------------------------------------------------------------
# https://docs.celeryq.dev/en/stable/userguide/configuration.html
# Time limits: the soft one raises SoftTimeLimitExceeded in the task, the hard
# one kills the worker process.
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 60)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 90)
# Longest countdown/ETA the API accepts. A worker holds an ETA task in its
# memory until it is due, outside the prefetch limit: countdown x a client's
# rate is what it can park there, so the cap is short (at most
# MAX_COUNTDOWN_CEILING, checked below). The Redis broker redelivers a task not
# acked within visibility_timeout, so that timeout must exceed the longest
# task plus the longest ETA, or tasks run twice.
APP_MAX_COUNTDOWN = env_int("APP_MAX_COUNTDOWN", 60)
MAX_COUNTDOWN_CEILING = 300
VISIBILITY_TIMEOUT = env_int("CELERY_VISIBILITY_TIMEOUT", 3600)
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
# One task at a time per process: long tasks don't hold others hostage.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Ack after the task ran, and requeue it if its process died: tasks must be
# idempotent (redisops.tasks).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_WORKER_CONCURRENCY = env_int("CELERY_WORKER_CONCURRENCY", 0) or None
CELERY_TASK_TRACK_STARTED = True
CELERY_RESULT_EXPIRES = env_int("CELERY_RESULT_EXPIRES", 3600)
CELERY_RESULT_EXTENDED = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Publishing retries for ~4.5 s (Celery's default gives up after ~0.6 s): a
# Redis restart under load takes longer, and the API would answer 503.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 6,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 1,
}
# Storing a task's state retries connection errors and refused writes
# (NOREPLICAS, READONLY: redisops.celery_redis) with full jitter, 0.2 s
# doubling to 5 s: 10 retries wait at most 36 s in all (18 s on average),
# well inside the soft time limit's margin for a short task. Longer, the
# state is not stored (BackendStoreError in the worker's log).
CELERY_RESULT_BACKEND_ALWAYS_RETRY = True
CELERY_RESULT_BACKEND_MAX_RETRIES = 10
CELERY_RESULT_BACKEND_BASE_SLEEP_BETWEEN_RETRIES_MS = 200
CELERY_RESULT_BACKEND_MAX_SLEEP_BETWEEN_RETRIES_MS = 5000
# Logging: ours (config.celery_app), not Celery's.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Queues and routes: heavy work has its own queue and workers.
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_CREATE_MISSING_QUEUES = False
CELERY_TASK_QUEUES = (Queue("default"), Queue("heavy"))
CELERY_TASK_ROUTES = {"redisops.tasks.heavy_*": {"queue": "heavy"}}
# Beat: exactly one `celery beat` in the fleet (its own service, never -B).
APP_HEARTBEAT_INTERVAL = env_int("APP_HEARTBEAT_INTERVAL", 30)
APP_HEARTBEAT_MAX_AGE = env_int("APP_HEARTBEAT_MAX_AGE", 120)
CELERY_BEAT_SCHEDULE = {
    "write-heartbeat": {
        "task": "redisops.tasks.write_heartbeat",
        "schedule": float(APP_HEARTBEAT_INTERVAL),
        "options": {"expires": float(APP_HEARTBEAT_INTERVAL)},
    },
    "trim-streams": {
        "task": "redisops.tasks.trim_streams",
        "schedule": 300.0,
        "options": {"expires": 300.0},
    },
}

# APP: streams, Pub/Sub, rate limits
# ------------------------------------------------------------------------------
APP_STREAM = f"{redis_acl.APP_PREFIX}stream:events"
APP_STREAM_GROUP = "workers"
APP_STREAM_MAXLEN = env_int("APP_STREAM_MAXLEN", 10_000)
# Bytes (UTF-8) of one entry's field names and values, as POST /api/stream
# accepts it: with MAXLEN it bounds the stream's size in bytes, not only in
# entries (redisops.views).
APP_STREAM_ENTRY_MAX_BYTES = env_int("APP_STREAM_ENTRY_MAX_BYTES", 4096)
# XADD MAXLEN ~ of <stream>:dlq (the consumer's dead letters, trim_streams).
APP_STREAM_DLQ_MAXLEN = env_int("APP_STREAM_DLQ_MAXLEN", 1000)
# An entry delivered this many times without success goes to <stream>:dlq.
APP_STREAM_MAX_DELIVERIES = env_int("APP_STREAM_MAX_DELIVERIES", 5)
# Pending entries idle this long are claimed from their (dead) consumer.
APP_STREAM_CLAIM_IDLE_MS = env_int("APP_STREAM_CLAIM_IDLE_MS", 60_000)
# Demos and drills only: stream_consumer fails entries on purpose (work_ms,
# poison, depends_on + app:outage:<name>; redisops/streams/demo_failures.py)
# and replay_dlq reports those outages. Never in production.
APP_STREAM_DEMO_FAILURES = env_bool("APP_STREAM_DEMO_FAILURES", False)
APP_PUBSUB_RECORD_STREAM = f"{redis_acl.APP_PREFIX}pubsub:received"
# record_payment: each API client has its own ledger (app:task:ledger:<client>)
# of at most this many accounts; it expires this long after its last
# payment, and so do the payments' processed-once markers. The TTL must
# exceed the visibility timeout, or a redelivered payment could miss its
# marker and apply twice (checked below).
APP_LEDGER_MAX_ACCOUNTS = env_int("APP_LEDGER_MAX_ACCOUNTS", 100)
APP_LEDGER_TTL = env_int("APP_LEDGER_TTL", 6 * 3600)
# Fleet-wide limit of redisops.tasks.notify (Celery's rate_limit is per worker).
APP_NOTIFY_RATE = (
    env_int("APP_NOTIFY_RATE_LIMIT", 10),
    env_int("APP_NOTIFY_RATE_PERIOD", 1),
)
# When the limiter's Redis is unreachable: "open" lets requests through
# (default: availability first; /readyz reports Redis down), "closed"
# answers 503. The choice is logged at WARNING on every failure.
RATELIMIT_FAILURE_MODE = env("RATELIMIT_FAILURE_MODE", "open")
if RATELIMIT_FAILURE_MODE not in {"open", "closed"}:
    raise ImproperlyConfigured("RATELIMIT_FAILURE_MODE must be 'open' or 'closed'")
# After a connection error the limiter skips Redis this long (circuit
# breaker), so requests don't each wait for the connect timeout.
RATELIMIT_BREAKER_SECONDS = env_int("RATELIMIT_BREAKER_SECONDS", 5)
if RATELIMIT_BREAKER_SECONDS < 0:
    raise ImproperlyConfigured("RATELIMIT_BREAKER_SECONDS must be >= 0")


def rate_limit_setting(prefix: str, algorithm: str, limit: int, period: int) -> dict:
    """A limit for redisops.middleware.rate_limit, checked now: a bad value
    fails at start, naming the variable, not as a 500 on the first request."""
    if algorithm not in ALGORITHMS:
        raise ImproperlyConfigured(
            f"{prefix}_ALGORITHM must be one of {sorted(ALGORITHMS)}, got {algorithm!r}"
        )
    if limit < 1:
        raise ImproperlyConfigured(f"{prefix}_LIMIT must be >= 1, got {limit}")
    if period < 1:
        raise ImproperlyConfigured(f"{prefix}_PERIOD must be >= 1 s, got {period}")
    problem = limit_problem(limit, period * 1000)
    if problem:
        raise ImproperlyConfigured(f"{prefix}_LIMIT, {prefix}_PERIOD: {problem}")
    return {"algorithm": algorithm, "limit": limit, "period": period}


def env_rate_limit(prefix: str, limit: int, period: int) -> dict:
    """<prefix>_ALGORITHM (default gcra), <prefix>_LIMIT, <prefix>_PERIOD (s),
    checked now (rate_limit_setting)."""
    return rate_limit_setting(
        prefix,
        env(f"{prefix}_ALGORITHM", "gcra"),
        env_int(f"{prefix}_LIMIT", limit),
        env_int(f"{prefix}_PERIOD", period),
    )


# The rate-limited demo endpoint /api/limited: per client address.
APP_LIMITED_ENDPOINT = env_rate_limit("APP_LIMITED", 5, 10)
# The API, per authenticated client (redisops.views): each write endpoint has
# its own limit, the reads (task result, stream progress, Pub/Sub records)
# share one. Sized for the demo; a load test raises them in its inventory.
APP_RATE_TASKS = env_rate_limit("APP_RATE_TASKS", 60, 60)
APP_RATE_PUBLISH = env_rate_limit("APP_RATE_PUBLISH", 60, 60)
APP_RATE_STREAM = env_rate_limit("APP_RATE_STREAM", 60, 60)
APP_RATE_READ = env_rate_limit("APP_RATE_READ", 600, 60)
# Backoff of redisops.tasks.flaky (seconds): retry n waits between half and all
# of min(cap, base * 2**n).
APP_RETRY_BACKOFF = {"base": 1.0, "cap": 30.0}


# django-redis: the cache ignores Redis errors (a miss), but logs them.
# https://github.com/jazzband/django-redis#log-ignored-exceptions
DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True


class RedisSettings(NamedTuple):
    """Settings derived from the Redis URLs; each environment that sets
    REDIS_URLS assigns every one of them by name."""

    celery_broker_url: str | None
    celery_broker_transport: str | None
    celery_broker_transport_options: dict[str, Any]
    celery_broker_use_ssl: dict[str, Any] | None
    celery_result_backend: str | None
    celery_result_backend_transport_options: dict[str, Any]
    celery_redis_backend_use_ssl: dict[str, Any] | None
    caches: dict[str, Any]
    redis_app_url: str | None


# A process without the cache user (every process but the web) has no cache.
NO_CACHE = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}


def check_redis_tls(urls: dict[str, str], tls: connections.RedisTls | None) -> None:
    """All or nothing: with a CA every TCP URL is rediss:// or sentinel://
    (which then speaks TLS to Sentinels and master), none goes out in plain
    text by mistake; a rediss:// URL needs the CA."""
    for name, url in urls.items():
        scheme = connections.parse_redis_url(url).scheme
        if scheme == "rediss" and tls is None:
            raise ImproperlyConfigured(
                f"{name} is rediss:// but REDIS_TLS_CA_FILE is not set: the "
                "server's certificate could not be verified"
            )
        if scheme == "redis" and tls is not None:
            raise ImproperlyConfigured(
                f"{name} is redis:// (plain text) while REDIS_TLS_CA_FILE is "
                "set: use rediss:// to Redis's TLS port"
            )


def redis_settings(
    urls: dict[str, str], tls: connections.RedisTls | None = None
) -> RedisSettings:
    """Celery broker and results, the cache and the app client from the URLs
    the process has (a missing one leaves its purpose unconfigured), with TLS
    for rediss://; refuses a broker database other than 0 and a mix of TLS
    and plain text, naming the variable."""
    check_redis_tls(urls, tls)
    broker = urls.get("REDIS_BROKER_URL")
    if broker and connections.parse_redis_url(broker).db != redis_acl.BROKER_DB:
        raise ImproperlyConfigured(
            f"REDIS_BROKER_URL must use database {redis_acl.BROKER_DB}: the broker "
            "ACL user's channel rules name it (prefixes separate the purposes)"
        )
    broker_url, broker_opts = (
        connections.celery_url_and_options(broker, redis_acl.BROKER_PREFIX, tls)
        if broker
        else (None, {})
    )
    results = urls.get("REDIS_RESULT_URL")
    result_url, result_opts = (
        connections.celery_url_and_options(results, redis_acl.RESULTS_PREFIX, tls)
        if results
        else (None, {})
    )
    cache = urls.get("REDIS_CACHE_URL")
    return RedisSettings(
        celery_broker_url=broker_url,
        # kombu's Redis transport, waiting out refused writes (redisops.celery_redis).
        celery_broker_transport=(
            connections.celery_broker_transport(broker) if broker else None
        ),
        celery_broker_transport_options={
            **broker_opts,
            "visibility_timeout": VISIBILITY_TIMEOUT,
        },
        # https://docs.celeryq.dev/en/stable/userguide/configuration.html#broker-use-ssl
        celery_broker_use_ssl=(
            connections.tls_kwargs(broker, tls) or None if broker else None
        ),
        celery_result_backend=result_url,
        celery_result_backend_transport_options=result_opts,
        # https://docs.celeryq.dev/en/stable/userguide/configuration.html#redis-backend-use-ssl
        celery_redis_backend_use_ssl=(
            connections.tls_kwargs(results, tls) or None if results else None
        ),
        caches=(
            {
                "default": connections.django_cache_config(
                    cache, redis_acl.CACHE_PREFIX, tls
                )
            }
            if cache
            else NO_CACHE
        ),
        redis_app_url=urls.get("REDIS_APP_URL"),
    )


def check_timeouts() -> None:
    if VISIBILITY_TIMEOUT <= CELERY_TASK_TIME_LIMIT + APP_MAX_COUNTDOWN:
        raise ImproperlyConfigured(
            "CELERY_VISIBILITY_TIMEOUT must exceed CELERY_TASK_TIME_LIMIT + "
            "APP_MAX_COUNTDOWN, or the broker redelivers running tasks"
        )
    if not 0 <= APP_MAX_COUNTDOWN <= MAX_COUNTDOWN_CEILING:
        raise ImproperlyConfigured(
            f"APP_MAX_COUNTDOWN must be 0-{MAX_COUNTDOWN_CEILING} s: a worker "
            "holds every ETA task in memory until it is due"
        )
    if CELERY_RESULT_EXPIRES < 1:
        raise ImproperlyConfigured(
            "CELERY_RESULT_EXPIRES must be >= 1 s (0 would keep results forever)"
        )
    for name, value in (
        ("APP_STREAM_MAXLEN", APP_STREAM_MAXLEN),
        ("APP_STREAM_DLQ_MAXLEN", APP_STREAM_DLQ_MAXLEN),
        ("APP_STREAM_ENTRY_MAX_BYTES", APP_STREAM_ENTRY_MAX_BYTES),
    ):
        if value < 1:
            raise ImproperlyConfigured(f"{name} must be >= 1, got {value}")
    if APP_LEDGER_TTL <= VISIBILITY_TIMEOUT:
        raise ImproperlyConfigured(
            "APP_LEDGER_TTL must exceed CELERY_VISIBILITY_TIMEOUT: a payment "
            "redelivered after its marker expired would apply twice"
        )
    if APP_LEDGER_MAX_ACCOUNTS < 1:
        raise ImproperlyConfigured("APP_LEDGER_MAX_ACCOUNTS must be >= 1")
    if CELERY_TASK_SOFT_TIME_LIMIT >= CELERY_TASK_TIME_LIMIT:
        raise ImproperlyConfigured(
            "CELERY_TASK_SOFT_TIME_LIMIT must be below CELERY_TASK_TIME_LIMIT"
        )


check_timeouts()
_redis = redis_settings(REDIS_URLS, REDIS_TLS)
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#broker-url
CELERY_BROKER_URL = _redis.celery_broker_url
CELERY_BROKER_TRANSPORT = _redis.celery_broker_transport
CELERY_BROKER_TRANSPORT_OPTIONS = _redis.celery_broker_transport_options
CELERY_BROKER_USE_SSL = _redis.celery_broker_use_ssl
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#result-backend
CELERY_RESULT_BACKEND = _redis.celery_result_backend
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = _redis.celery_result_backend_transport_options
CELERY_REDIS_BACKEND_USE_SSL = _redis.celery_redis_backend_use_ssl
# https://docs.djangoproject.com/en/5.2/ref/settings/#caches
CACHES = _redis.caches
REDIS_APP_URL = _redis.redis_app_url

# LOGGING: one line per event on stderr, with the Celery task id when there is one
# ------------------------------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/topics/logging/
LOG_LEVEL = env("DJANGO_LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"task": {"()": "redisops.logsetup.TaskContextFilter"}},
    "formatters": {
        "line": {
            "()": "redisops.logsetup.OneLineFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s pid=%(process)d "
            "task=%(task_id)s %(message)s",
        }
    },
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "line",
            "filters": ["task"],
        }
    },
    "root": {"handlers": ["stderr"], "level": LOG_LEVEL},
    "loggers": {
        "django.request": {"level": "ERROR"},
        "celery": {"level": LOG_LEVEL},
        # billiard (the prefork pool) logs as "multiprocessing" without
        # propagating; without a handler of its own its messages ("process ...
        # exited with signal 9") would bypass our format.
        "multiprocessing": {
            "handlers": ["stderr"],
            "level": "WARNING",
            "propagate": False,
        },
    },
}
