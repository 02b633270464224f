"""Production: behind a TLS-terminating reverse proxy; every secret and URL
comes from the environment, and a missing one fails naming the variable.

`manage.py check --deploy` is clean with these settings
(redisops/tests/test_settings.py).
"""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from redisops import redis_acl

from .base import *  # noqa: F403
from .base import (
    beat_schedule_filename,
    databases,
    env_bool,
    env_int,
    env_list,
    env_required,
    redis_settings,
    redis_tls_from_env,
    static_root,
)

DEBUG = False
# https://docs.djangoproject.com/en/5.2/ref/settings/#secret-key
SECRET_KEY = env_required("DJANGO_SECRET_KEY", "50+ random characters")
# https://docs.djangoproject.com/en/5.2/ref/settings/#allowed-hosts
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", [])
if not ALLOWED_HOSTS:
    env_required("DJANGO_ALLOWED_HOSTS", "comma-separated host names")

# Each process gets the URLs of its own ACL users only (the django_app role
# writes one env file per process): APP_PROCESS names the process, and every
# URL it uses is required, none other is read. A missing one stops the process
# at start, naming the variable, never a 500 later.
APP_PROCESS = env_required(
    "APP_PROCESS",
    f"which process this is: {', '.join(redis_acl.PROCESS_USERS)} "
    "(redisops.redis_acl.PROCESS_USERS: the Redis URLs it needs)",
)
if APP_PROCESS not in redis_acl.PROCESS_USERS:
    raise ImproperlyConfigured(
        f"APP_PROCESS must be one of {', '.join(redis_acl.PROCESS_USERS)}, "
        f"got {APP_PROCESS!r}"
    )
REDIS_URLS = {
    user.env: env_required(
        user.env,
        f"the {APP_PROCESS} process connects as ACL user {user.name}: a redis://, "
        "rediss:// or sentinel:// URL",
    )
    for user in redis_acl.process_users(APP_PROCESS)
}
REDIS_TLS = redis_tls_from_env()
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

# SECURITY: TLS ends at the proxy, which sets X-Forwarded-Proto.
# ------------------------------------------------------------------------------
# No SECURE_PROXY_SSL_HEADER: Django would believe that header from any peer.
# request.is_secure() reads wsgi.url_scheme, which gunicorn sets to https
# from X-Forwarded-Proto (its secure_scheme_headers) only for a peer it
# trusts: the UNIX socket the proxy connects to, or forwarded_allow_ips.
# https://docs.djangoproject.com/en/5.2/ref/settings/#secure-ssl-redirect
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
# Probes talk to the gunicorn socket directly, without the proxy's header.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^version$"]
# https://docs.djangoproject.com/en/5.2/ref/settings/#session-cookie-secure
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
# https://docs.djangoproject.com/en/5.2/ref/settings/#csrf-cookie-secure
CSRF_COOKIE_SECURE = True
# https://docs.djangoproject.com/en/5.2/ref/middleware/#http-strict-transport-security
# Start low; raise to 31536000 once every subdomain serves HTTPS.
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 60)
# includeSubDomains and preload bind every subdomain of the site's domain, and
# a preload list entry takes months to undo: opt-in per deployment, never a
# default. check --deploy warns about them (W005, W021); those two warnings
# are silenced only while the deployment has not opted in, for that reason.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool(
    "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", False
)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
# https://docs.djangoproject.com/en/5.2/ref/settings/#silenced-system-checks
SILENCED_SYSTEM_CHECKS = [
    *([] if SECURE_HSTS_INCLUDE_SUBDOMAINS else ["security.W005"]),
    *([] if SECURE_HSTS_PRELOAD else ["security.W021"]),
]
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# The API's token hashes (redisops.api_tokens); the role writes the file
# root:<app group> 0640 on web hosts. Every process needs the variable; only
# the web process reads the file (at start, and when it changes).
APP_API_TOKENS_FILE = env_required(
    "APP_API_TOKENS_FILE",
    "path of the API's token hashes, one '<client> <sha256 hex>' per line",
)
# State (SQLite unless DATABASE_URL, static files, beat schedule) lives in
# the units' StateDirectory. No default here: the django_app role writes
# DJANGO_STATE_DIR into the env file, and a second default could disagree.
STATE_DIR = Path(
    env_required(
        "DJANGO_STATE_DIR",
        "writable directory for SQLite, static files and the beat schedule, "
        "e.g. /var/lib/redisops",
    )
)
DATABASES = databases(STATE_DIR)
STATIC_ROOT = static_root(STATE_DIR)
CELERY_BEAT_SCHEDULE_FILENAME = beat_schedule_filename(STATE_DIR)
